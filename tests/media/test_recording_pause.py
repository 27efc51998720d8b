"""Pausing a call's recording: what arrives while paused is never kept; the MP3 holds
silence for that time and still lasts the whole talk time. Real sockets, sox decodes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media._rtp import (
    decode_mp3,
    frames,
    free_range,
    mp3_seconds,
    open_phone,
    tone_codes,
    tone_level,
)

from tongdai.media import RelayEngine

RATE = 8000


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RelayEngine]:
    eng = RelayEngine("127.0.0.1", free_range(8), tmp_path / "recordings")
    await eng.start()
    yield eng
    await eng.stop()


async def test_audio_sent_while_paused_is_not_in_the_recording(engine: RelayEngine) -> None:
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="pause1", app_id="app1", record=True)
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    started = time.monotonic()
    s.start_recording()
    # A second of 440 Hz, a second of 1000 Hz while paused (the card number), a
    # second of 440 Hz again.
    await a.stream(frames(tone_codes(440, 1.0), ssrc=0xA), s.local_address("a"))
    s.pause_recording()
    await a.stream(frames(tone_codes(1000, 1.0), ssrc=0xB, ts0=8000),
                   s.local_address("a"))
    s.resume_recording()
    assert not s.recording_paused
    await a.stream(frames(tone_codes(440, 1.0), ssrc=0xC, ts0=16000), s.local_address("a"))
    await asyncio.sleep(0.04)
    talked = time.monotonic() - started
    name = await s.close()
    a.close()
    b.close()
    path = engine.recordings_dir / "app1" / name
    assert abs(mp3_seconds(path) - talked) < 1.0  # the paused time is in it, as silence
    samples = decode_mp3(path)
    assert tone_level(samples[:len(samples) // 3], 440) > 2500
    assert tone_level(samples[-len(samples) // 3:], 440) > 2500
    assert tone_level(samples, 1000) < 100  # nothing of what was said while paused
    # and the paused second is silence, not the other tone's leftovers
    quiet = [max(abs(x) for x in samples[i:i + 800]) for i in range(0, len(samples) - 800, 800)]
    assert sum(1 for q in quiet if q < 200) >= 6  # at least 0.6 s of it


async def test_a_pause_before_the_answer_holds_from_the_start(engine: RelayEngine) -> None:
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="pause2", app_id="app1", record=True)
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    s.pause_recording()
    s.start_recording()
    assert s.recording_paused
    await a.stream(frames(tone_codes(440, 0.5), ssrc=0xA), s.local_address("a"))
    s.resume_recording()
    await a.stream(frames(tone_codes(440, 1.0), ssrc=0xB, ts0=90000), s.local_address("a"))
    await asyncio.sleep(0.04)
    name = await s.close()
    a.close()
    b.close()
    samples = decode_mp3(engine.recordings_dir / "app1" / name)
    assert max(abs(x) for x in samples[int(0.1 * RATE):int(0.4 * RATE)]) < 200
    assert tone_level(samples[-len(samples) // 3:], 440) > 2500
