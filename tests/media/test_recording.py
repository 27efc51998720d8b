"""Recording through the relay: real sockets, real time, MP3 decoded by sox."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media._rtp import (
    Phone,
    decode_mp3,
    frames,
    free_range,
    mp3_seconds,
    open_phone,
    payload_pcm,
    rtp,
    tone_codes,
    tone_level,
)

from tongdai.media import RelayEngine, RelaySession

TALK = 2.0  # seconds of audio each way


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RelayEngine]:
    eng = RelayEngine("127.0.0.1", free_range(16), tmp_path / "recordings")
    await eng.start()
    yield eng
    await eng.stop()


async def talk(session: RelaySession, a: Phone, b: Phone, *, lossy: bool = False,
               alaw_b: bool = False) -> float:
    """A and B exchange TALK seconds of tone; returns the talk time as recorded."""
    session.set_remote("a", *a.address)
    session.set_remote("b", *b.address)
    to_b = frames(tone_codes(440, TALK), ssrc=0xA, ts0=2**32 - 4000)  # wraps mid-call
    to_a = frames(tone_codes(1000, TALK, alaw=alaw_b), ssrc=0xB, seq0=65500,
                  pt=8 if alaw_b else 0)
    # Lossy: 10% lost and 12% delayed past the next packet (reordered), both ways.
    lose = range(5, len(to_b), 10) if lossy else ()
    delay = range(0, len(to_b), 8) if lossy else ()
    started = time.monotonic()
    session.start_recording()
    await asyncio.gather(
        a.stream(to_b, session.local_address("a"), lose=lose, delay=delay),
        b.stream(to_a, session.local_address("b"), lose=lose, delay=delay))
    await asyncio.sleep(0.04)
    return time.monotonic() - started


async def check_recording(engine: RelayEngine, name: str, talk_time: float,
                          app_id: str = "app1") -> None:
    assert name.startswith("call_recording_") and name.endswith(".mp3")
    path = engine.recordings_dir / app_id / name
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [name]  # no partial file left
    assert abs(mp3_seconds(path) - talk_time) < 1.0
    samples = decode_mp3(path)
    middle = samples[4000:-4000]
    assert tone_level(middle, 440) > 2500
    assert tone_level(middle, 1000) > 2500
    assert tone_level(middle, 700) < 500


async def test_a_call_is_recorded_with_both_parties(engine: RelayEngine) -> None:
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="rec1", app_id="app1", record=True)
    talk_time = await talk(s, a, b)
    start = time.monotonic()
    name = await s.close()
    talk_time += time.monotonic() - start
    await check_recording(engine, name, talk_time)
    # And each side heard the other.
    heard_by_b = payload_pcm(d for d, _, _ in b.received)
    heard_by_a = payload_pcm(d for d, _, _ in a.received)
    assert tone_level(heard_by_b, 440) > 7000 and tone_level(heard_by_b, 1000) < 500
    assert tone_level(heard_by_a, 1000) > 7000 and tone_level(heard_by_a, 440) < 500
    a.close()
    b.close()


async def test_loss_and_reordering_keep_the_length(engine: RelayEngine) -> None:
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="rec2", app_id="app2", record=True)
    talk_time = await talk(s, a, b, lossy=True, alaw_b=True)
    name = await s.close()
    await check_recording(engine, name, talk_time, app_id="app2")
    a.close()
    b.close()


async def test_no_recording_without_answer_audio_or_consent(engine: RelayEngine) -> None:
    a = await open_phone()
    # Never answered: start_recording() was not called.
    s1 = await engine.create_session(call_id="n1", app_id="app1", record=True)
    s1.set_remote("b", *a.address)
    a.send(rtp(seq=1, ts=0, ssrc=1, payload=b"\xff" * 160), s1.local_address("a"))
    await asyncio.sleep(0.05)
    assert await s1.close() == ""
    # The app does not record: start_recording() is a no-op.
    s2 = await engine.create_session(call_id="n2", app_id="app1", record=False)
    s2.start_recording()
    a.send(rtp(seq=1, ts=0, ssrc=1, payload=b"\xff" * 160), s2.local_address("a"))
    await asyncio.sleep(0.05)
    assert await s2.close() == ""
    # Answered, but no audio ever came.
    s3 = await engine.create_session(call_id="n3", app_id="app1", record=True)
    s3.start_recording()
    s3.start_recording()  # idempotent
    await asyncio.sleep(0.05)
    assert await s3.close() == ""
    assert await s3.close() == ""
    assert not (engine.recordings_dir / "app1").exists() or \
        not list((engine.recordings_dir / "app1").iterdir())
    a.close()


async def test_stop_finishes_open_recordings(tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", free_range(8), tmp_path / "rec", flush_interval=0.2)
    await engine.start()
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="st", app_id="app1", record=True)
    s.set_remote("b", *b.address)
    s.start_recording()
    await a.stream(frames(tone_codes(440, 0.6), ssrc=3), s.local_address("a"))
    await engine.stop()  # closes the session, which publishes its recording
    files = list((tmp_path / "rec" / "app1").iterdir())
    assert len(files) == 1 and files[0].suffix == ".mp3"
    assert 0.4 < mp3_seconds(files[0]) < 1.5
    a.close()
    b.close()


async def test_a_failing_disk_costs_the_recording_not_the_call(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_bytes(b"")  # the recordings folder cannot be created
    engine = RelayEngine("127.0.0.1", free_range(8), blocked, flush_interval=0.1)
    await engine.start()
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="disk", app_id="app1", record=True)
    s.set_remote("b", *b.address)
    s.start_recording()
    await a.stream(frames(tone_codes(440, 0.4), ssrc=3), s.local_address("a"))
    await b.wait_for(20)  # relaying went on
    assert await s.close() == ""
    await engine.stop()
    assert "recording of call disk failed" in capfd.readouterr().err  # the encoder's log
    assert engine.sessions == 0 and engine.free_port_pairs == 4
    a.close()
    b.close()


async def test_a_dead_encoder_is_replaced(engine: RelayEngine,
                                          caplog: pytest.LogCaptureFixture) -> None:
    a, b = await open_phone(), await open_phone()
    s1 = await engine.create_session(call_id="crash", app_id="app1", record=True)
    s1.set_remote("b", *b.address)
    s1.start_recording()
    [pid] = engine.recorders.pids
    os.kill(pid, signal.SIGKILL)  # SIGTERM and SIGINT are ignored by design
    await a.stream(frames(tone_codes(440, 0.2), ssrc=3), s1.local_address("a"))
    await b.wait_for(10)  # the relay does not care
    assert await s1.close() == ""
    assert "crash" in caplog.text
    # The next recorded call gets a new encoder.
    s2 = await engine.create_session(call_id="after", app_id="app1", record=True)
    assert engine.recorders.pids and engine.recorders.pids != [pid]
    s2.set_remote("b", *b.address)
    s2.start_recording()
    await a.stream(frames(tone_codes(440, 0.5), ssrc=4), s2.local_address("a"))
    name = await s2.close()
    assert name and (engine.recordings_dir / "app1" / name).is_file()
    a.close()
    b.close()


async def test_calls_spread_over_several_encoders(tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", free_range(16), tmp_path, encoder_processes=2)
    await engine.start()
    a, b = await open_phone(), await open_phone()
    sessions = [await engine.create_session(call_id=f"e{i}", app_id="app1", record=True)
                for i in range(2)]
    assert len(set(engine.recorders.pids)) == 2
    for s in sessions:
        s.set_remote("b", *b.address)
        s.start_recording()
    await asyncio.gather(*(a.stream(frames(tone_codes(440, 0.4), ssrc=7 + i),
                                    s.local_address("a"))
                           for i, s in enumerate(sessions)))
    names = [await s.close() for s in sessions]
    assert all(names) and len(set(names)) == 2
    assert sorted(p.name for p in (tmp_path / "app1").iterdir()) == sorted(names)
    await engine.stop()
    assert engine.recorders.pids == []
    a.close()
    b.close()
