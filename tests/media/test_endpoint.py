"""tongdai as a media endpoint on one leg: real UDP sockets on loopback, real time."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from array import array
from pathlib import Path

import pytest
from tests.media._rtp import (
    decode_mp3,
    frames,
    open_phone,
    payload_pcm,
    rtp,
    tone,
    tone_codes,
    tone_level,
)
from tests.media.legmedia import Peer, leg_media_peer

from tongdai.media.endpoint import Ticker, _table, encode_prompt
from tongdai.media.prompts import Prompt, builtin_prompt
from tongdai.rtp.g711 import decode_alaw, decode_ulaw, linear_to_alaw, linear_to_ulaw
from tongdai.rtp.packet import PT_PCMA, PT_PCMU, parse_rtp


def tone_prompt(hz: float, seconds: float, name: str = "tone") -> Prompt:
    return Prompt(name, array("h", tone(hz, int(seconds * 8000))).tobytes())


def headers(peer: Peer) -> list[tuple[int, bool, int, int, int]]:
    """(pt, marker, seq, ts, ssrc) of every packet the phone received."""
    out = []
    for data, _, _ in peer.phone.received:
        h = parse_rtp(data)
        assert h is not None
        out.append((h.payload_type, h.marker, h.sequence, h.timestamp, h.ssrc))
    return out


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_a_prompt_is_sent_as_paced_g711_rtp(tmp_path: Path, codec: str) -> None:
    prompt = tone_prompt(1000, 1.0)
    async with leg_media_peer(tmp_path, codec) as peer:
        started = time.monotonic()
        assert await peer.media.play(prompt) is None
        await asyncio.sleep(0.05)
        got = headers(peer)
        # 1 s in 20 ms packets (a loop stalled past 200 ms skips frames, never delays)
        assert len(got) + peer.media.skipped == 50
        pt = PT_PCMU if codec == "PCMU" else PT_PCMA
        assert {h[0] for h in got} == {pt}
        assert [h[1] for h in got] == [True] + [False] * (len(got) - 1)  # RFC 3551 §4.1
        assert len({h[4] for h in got}) == 1
        seqs, stamps = [h[2] for h in got], [h[3] for h in got]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)]
        assert all(d % 160 == 0 and d > 0 for d in steps)
        assert sum(steps) == 160 * 49
        for data, addr, _ in peer.phone.received:
            assert len(data) == 12 + 160
            assert addr == peer.address  # from the leg's own port (symmetric RTP)
        # Paced, not sent in a burst: the 50th packet cannot leave before 49 intervals
        # after the first tick, which comes after play() began.
        assert peer.phone.received[-1][2] - started >= 49 * 0.02
        audio = payload_pcm(d for d, _, _ in peer.phone.received)
        assert tone_level(audio[800:-800], 1000) > 6000
        assert tone_level(audio[800:-800], 440) < 200


async def test_timestamps_follow_the_clock_across_a_pause(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        await peer.media.play(tone_prompt(440, 0.2))
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await peer.media.play(tone_prompt(440, 0.2))
        played = loop.time() - started
        got = headers(peer)
        assert len(got) == 20
        first, second = got[:10], got[10:]
        assert second[0][1] and not any(h[1] for h in second[1:])  # a new talkspurt
        assert (second[0][2] - first[-1][2]) & 0xFFFF == 1  # seq goes on without a gap
        gap = (second[0][3] - first[-1][3]) & 0xFFFFFFFF
        # The timestamp jumped by the pause (RFC 3550 §5.1), in whole 20 ms frames.
        assert gap % 160 == 0 and gap >= 160 * (1 + 0.3 / 0.02) - 160
        assert played >= 0.18


async def test_rfc4733_digits_are_detected_once_each(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        for digit in "5#5*09D":
            peer.press(digit)
        # A repeat of the last end packet (late, duplicated) is not another press.
        peer.send(peer.event_packets("1")[-1])
        peer.send(rtp(seq=1, ts=1, ssrc=peer.ssrc, pt=101, payload=b"\x02"))  # too short
        peer.send(rtp(seq=2, ts=2, ssrc=peer.ssrc, pt=101,
                      payload=struct.pack("!BBH", 32, 0x80, 800)))  # not a DTMF event
        assert await peer.media.collect(max_digits=20, timeout=0.5) == "5#5*09D1"


async def test_a_digit_interrupts_a_prompt_and_later_ones_wait(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        playing = asyncio.create_task(peer.media.play(tone_prompt(440, 5.0)))
        await peer.phone.wait_for(5)
        peer.press("3")
        assert await asyncio.wait_for(playing, 2) == "3"
        sent = peer.media.sent
        await asyncio.sleep(0.1)
        assert peer.media.sent == sent  # the prompt stopped
        peer.press("4")
        assert await peer.media.collect(timeout=1) == "4"
        peer.media.dtmf("2")  # as from a SIP INFO
        peer.media.dtmf("6")
        assert await peer.media.collect(max_digits=2, timeout=1) == "26"


async def test_collect_ends_on_terminator_timeout_and_stop(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        for d in "12#":
            peer.media.dtmf(d)
        assert await peer.media.collect(max_digits=5, timeout=1, terminator="#") == "12"
        assert await peer.media.collect(timeout=0.1) == ""
        task = asyncio.create_task(peer.media.collect(max_digits=4, timeout=10))
        await asyncio.sleep(0.05)
        peer.media.dtmf("7")
        await asyncio.sleep(0.05)
        peer.media.stop()
        assert await asyncio.wait_for(task, 1) == "7"
        peer.media.dtmf("x")  # garbage from a SIP INFO: ignored
        peer.media.dtmf("55")
        assert await peer.media.collect(timeout=0.05) == ""


async def test_an_uninterruptible_prompt_keeps_digits_for_collect(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        playing = asyncio.create_task(peer.media.play(tone_prompt(440, 0.3),
                                                      stop_on_dtmf=False))
        await peer.phone.wait_for(2)
        peer.press("9")
        assert await playing is None
        assert len(peer.phone.received) == 15
        assert await peer.media.collect(timeout=0.5) == "9"


async def test_music_loops_and_a_prompt_plays_over_it(tmp_path: Path) -> None:
    music = tone_prompt(440, 0.1, "music")  # five packets, looped
    async with leg_media_peer(tmp_path) as peer:
        peer.media.start_music(music)
        await peer.phone.wait_for(12)
        await peer.media.play(tone_prompt(1000, 0.2))
        await peer.phone.wait_for(len(peer.phone.received) + 6)
        peer.media.stop_music()
        await asyncio.sleep(0.1)
        got = headers(peer)
        count = len(got)
        await asyncio.sleep(0.1)
        assert len(peer.phone.received) == count  # silent once the music stopped
        seqs = [h[2] for h in got]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        assert sum(h[1] for h in got) == 1  # one unbroken talkspurt
        codes = [d[12:] for d, _, _ in peer.phone.received]
        looped = encode_prompt(music, PT_PCMU)
        assert codes[5] == codes[0] == looped[:160]  # the loop starts over
        tones = [tone_level(array("h", bytes(decode_ulaw(c))), 1000) > 3000 for c in codes]
        assert tones.count(True) == 10  # the prompt's 10 packets, then music again
        assert not tones[-1]


async def test_the_other_leg_is_cut_off_until_bridge(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        b = await open_phone()
        try:
            peer.session.set_remote("b", *b.address)
            b_addr = peer.session.local_address("b")
            b.send(rtp(seq=1, ts=160, ssrc=0xB, payload=tone_codes(440, 0.02)), b_addr)
            peer.send(rtp(seq=1, ts=160, ssrc=peer.ssrc, payload=tone_codes(440, 0.02)))
            await asyncio.sleep(0.1)
            assert peer.phone.received == [] and b.received == []
            peer.session.bridge()
            assert await peer.media.play(tone_prompt(440, 0.2)) is None  # detached
            b.send(rtp(seq=2, ts=320, ssrc=0xB, payload=tone_codes(440, 0.02)), b_addr)
            peer.send(rtp(seq=2, ts=320, ssrc=peer.ssrc, payload=tone_codes(440, 0.02)))
            await peer.phone.wait_for(1)
            await b.wait_for(1)
            assert peer.session.packets_relayed == 2
            # Out of the relay again: the same stream (SSRC) goes on.
            again = peer.session.leg_media("a", "PCMA")
            assert again is peer.media
            await again.play(tone_prompt(440, 0.1))
            got = [parse_rtp(d) for d, _, _ in peer.phone.received[1:]]
            assert [h.payload_type for h in got if h] == [PT_PCMA] * 5
        finally:
            b.close()


async def test_record_writes_a_voicemail_mp3_of_what_the_leg_says(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        recording = asyncio.create_task(peer.media.record(app_id="app1", limit=10,
                                                          silence=0.6))
        await asyncio.sleep(0.05)
        talk = frames(tone_codes(440, 1.5), ssrc=peer.ssrc)
        await peer.phone.stream(talk, peer.address)
        name = await asyncio.wait_for(recording, 30)
        assert name.startswith("voicemail_") and name.endswith(".mp3")
        path = peer.engine.recordings_dir / "app1" / name
        samples = decode_mp3(path)
        assert 1.4 < len(samples) / 8000 < 2.8  # the message and a little pause after
        assert tone_level(samples[2000:10000], 440) > 2500
        assert tone_level(samples[2000:10000], 1000) < 300


async def test_record_ends_on_hash_and_on_limit(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        recording = asyncio.create_task(peer.media.record(app_id="app1", limit=10))
        talk = frames(tone_codes(440, 0.6, alaw=True), ssrc=peer.ssrc, pt=8)
        await peer.phone.stream(talk, peer.address)
        peer.press("#")
        name = await asyncio.wait_for(recording, 30)
        assert name and len(decode_mp3(peer.engine.recordings_dir / "app1" / name)) < 8000

        recording = asyncio.create_task(peer.media.record(app_id="app1", limit=0.5))
        await peer.phone.stream(frames(tone_codes(440, 1.0), ssrc=peer.ssrc), peer.address)
        name = await asyncio.wait_for(recording, 30)
        assert abs(len(decode_mp3(peer.engine.recordings_dir / "app1" / name)) / 8000
                   - 0.5) < 0.15


async def test_record_of_silence_keeps_nothing(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        recording = asyncio.create_task(peer.media.record(app_id="app1", limit=5,
                                                          silence=0.4))
        quiet = frames(bytes([0xFF]) * 8000, ssrc=peer.ssrc)  # μ-law zero
        await peer.phone.stream(quiet[:30], peer.address)
        assert await asyncio.wait_for(recording, 30) == ""
        folder = peer.engine.recordings_dir / "app1"
        assert not folder.exists() or list(folder.iterdir()) == []


async def test_close_releases_whatever_waits(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        playing = asyncio.create_task(peer.media.play(builtin_prompt("hold")))
        collecting = asyncio.create_task(peer.media.collect(timeout=30))
        await peer.phone.wait_for(2)
        await peer.session.close()
        assert await asyncio.wait_for(playing, 1) is None
        assert await asyncio.wait_for(collecting, 1) == ""
        assert peer.engine.ticker.playing == 0


def test_encoding_matches_the_reference_g711() -> None:
    pcm = array("h", [0, 1, -1, 100, -100, 5000, -5000, 32767, -32768, 12345] * 16)
    prompt = Prompt("p", pcm.tobytes())
    for pt, decode in ((PT_PCMU, decode_ulaw), (PT_PCMA, decode_alaw)):
        codes = encode_prompt(prompt, pt)
        assert len(codes) == 160
        back = array("h", bytes(decode(codes)))
        for x, y in zip(pcm, back, strict=True):
            assert abs(x - y) <= max(16, abs(x) // 16)


def test_the_encoding_tables_are_the_reference_encoders() -> None:
    for pt, enc in ((PT_PCMU, linear_to_ulaw), (PT_PCMA, linear_to_alaw)):
        assert _table(pt) == bytes(enc(s - 65536 if s >= 32768 else s) for s in range(65536))


async def test_long_music_is_encoded_off_the_loop_and_loops(tmp_path: Path) -> None:
    hold = tone_prompt(440, 12.0, "long-music-test")  # over 10 s: encoded in a thread
    async with leg_media_peer(tmp_path, "PCMA") as peer:
        peer.media.start_music(hold)
        assert peer.media.music is False  # not yet: being encoded
        await peer.phone.wait_for(10, within=5)
        assert peer.media.music
        codes = [d[12:] for d, _, _ in peer.phone.received[:10]]
        assert b"".join(codes) == encode_prompt(hold, PT_PCMA)[:1600]
        peer.media.stop_music()
        peer.media.start_music(hold)  # cached now: at once
        assert peer.media.music


async def test_a_key_pressed_before_a_prompt_interrupts_it_at_once(tmp_path: Path) -> None:
    async with leg_media_peer(tmp_path) as peer:
        peer.media.dtmf("1")
        peer.media.dtmf("2")
        assert await peer.media.play(tone_prompt(440, 5.0)) == "1"  # type-ahead, in order
        assert peer.media.sent == 0
        assert await peer.media.play(tone_prompt(440, 0.1), stop_on_dtmf=False) is None
        assert await peer.media.collect(timeout=0.1) == "2"


async def test_the_ticker_serves_each_leg_every_20_ms_in_its_own_slot() -> None:
    ticker = Ticker(record_lateness=True)
    loop = asyncio.get_running_loop()

    class Player:
        def __init__(self) -> None:
            self.phase = ticker.assign()
            self.calls: list[tuple[int, float]] = []

        def on_tick(self, tick: int) -> None:
            self.calls.append((tick, loop.time()))

    players = [Player() for _ in range(8)]
    assert [p.phase for p in players] == [0, 1, 2, 3, 0, 1, 2, 3]
    first = {id(p): ticker.add(p, p.phase) for p in players}
    await asyncio.sleep(0.25)
    ticker.discard(players[0])
    assert ticker.playing == 7
    await asyncio.sleep(0.05)
    ticker.close()
    origin = ticker._origin
    assert origin is not None
    for p in players:
        ticks = [t for t, _ in p.calls]
        assert ticks[0] == first[id(p)]
        # Called for each tick in order (a late call covers the ticks it missed).
        assert ticks == sorted(set(ticks))
        for tick, at in p.calls:
            # Never early: tick k of slot p is due at origin + k * 20 ms + p * 5 ms.
            assert at >= origin + tick * 0.02 + p.phase * 0.005 - 0.001
    assert len(players[1].calls) > len(players[0].calls)  # no calls once discarded
    assert ticker.lateness is not None and len(ticker.lateness) >= 10


async def test_on_hold_nothing_is_sent_and_music_resumes_after(tmp_path: Path) -> None:
    music = tone_prompt(440, 0.1, "music")
    async with leg_media_peer(tmp_path) as peer:
        peer.media.start_music(music)
        await peer.phone.wait_for(5)
        peer.media.hold(True)
        await asyncio.sleep(0.06)  # a packet already on its way may still arrive
        held = len(peer.phone.received)
        await asyncio.sleep(0.2)
        assert len(peer.phone.received) == held  # silent while held
        assert peer.media.music  # the music goes on in time
        peer.media.hold(False)
        await peer.phone.wait_for(held + 3)
        got = headers(peer)
        seqs = [h[2] for h in got]
        # One sequence without gaps (no packet was sent on hold), a new talkspurt after.
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        assert got[held][1] and sum(h[1] for h in got) == 2
        # The timestamp followed the clock through the hold (RFC 3550 §5.1).
        assert (got[held][3] - got[held - 1][3]) & 0xFFFFFFFF >= 160 * 10
