"""Calls whose media goes through a real rtpengine (TONGDAI_MEDIA_ENGINE=rtpengine:...):
baresip devices talk through it, and its recording comes back as tongdai's MP3."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.audiocheck import dominant_hz, duration, rms, tone_power
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import Phones, Server, download_recording, make_server, wait_until
from tests.e2e.rtpengine_daemon import Rtpengine, marks
from tests.media._rtp import decode_mp3, frames, mp3_seconds, open_phone, tone_codes, tone_level

from tongdai.media import MediaUnavailable
from tongdai.media.rtpengine import MediaFeatureUnavailable, RtpengineEngine

pytestmark = marks()


class Pbx:
    def __init__(self, server: Server, rtpengine: Rtpengine, tmp: Path) -> None:
        self.server, self.rtpengine, self.tmp = server, rtpengine, tmp
        app = server.cli("app", "create", "relayed")
        self.app_id: str = app["app_id"]
        self.secret: str = app["app_secret"]
        for user, ext in (("alice", "101"), ("bob", "102")):
            server.cli("device", "add", "--app", self.app_id, user, "--password",
                       f"{user}-secret-pw", "--extension", ext)

    def phone(self, phones: Phones, user: str, tone: str) -> Baresip:
        p = phones.start(f"{user}-{time.monotonic_ns()}", tone)
        p.add_account(user, f"{user}-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p

    def expect(self, phone: Baresip, event: str, timeout: float = 10) -> dict[str, Any]:
        try:
            return phone.ctl.wait_event(event, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- tongdai ---\n{self.server.log()[-3000:]}"
                                 f"\n--- rtpengine ---\n{self.rtpengine.log()[-3000:]}") from None

    def wait_cdr(self, count: int) -> dict[str, Any]:
        rows = wait_until(lambda: (r := self.server.cli("cdr", "list", "--app", self.app_id))
                          and len(r) >= count and r, timeout=20)
        return dict(rows[0])

    def download(self, media: str) -> Path:
        return download_recording(self.server, self.app_id, self.secret, media, self.tmp)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    tmp = tmp_path_factory.mktemp("rtpengine")
    rtpengine = Rtpengine(tmp)
    rtpengine.start()
    server = make_server(tmp, media_engine=rtpengine.address, media_timeout="4",
                         rtpengine_recording_dir=str(rtpengine.spool))
    try:
        server.start()
        yield Pbx(server, rtpengine, tmp)
    finally:
        server.stop()
        rtpengine.stop()


def rtp_counts(rtpengine: Rtpengine) -> dict[str, int]:
    """RTP packets rtpengine received per tag of its one call (leg a, leg b)."""
    calls = rtpengine.ng("list")["calls"]
    assert len(calls) == 1, calls
    tags = rtpengine.ng("query", call_id=calls[0])["tags"]
    return {tag: sum(s["stats"]["packets"] for m in mono["medias"] for s in m["streams"]
                     if "RTCP" not in s.get("flags", ()))
            for tag, mono in tags.items()}


def test_call_relayed_and_recorded_by_rtpengine(pbx: Pbx, phones: Phones) -> None:
    before = len(pbx.server.cli("cdr", "list", "--app", pbx.app_id))
    a = pbx.phone(phones, "alice", "tone440")
    b = pbx.phone(phones, "bob", "tone1000")
    res = a.ctl.cmd("dial", f"sip:102@{pbx.server.sip}")
    assert res.get("ok"), res
    pbx.expect(a, "CALL_ESTABLISHED")
    pbx.expect(b, "CALL_ESTABLISHED")
    # Both legs' RTP reaches rtpengine, and keeps coming.
    first = wait_until(lambda: (c := rtp_counts(pbx.rtpengine)) and
                       c.get("a", 0) > 25 and c.get("b", 0) > 25 and c, timeout=10)
    # 6 s more of it: longer than the media timeout (4 s), which rtpengine's counters,
    # polled by tongdai, keep from ending the call
    wait_until(lambda: all(n > first[t] + 300 for t, n in rtp_counts(pbx.rtpengine).items()),
               timeout=15)
    a.ctl.cmd("hangup")
    pbx.expect(b, "CALL_CLOSED")
    cdr = pbx.wait_cdr(before + 1)
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["billing_seconds"] >= 6
    # rtpengine forgot the call, and tongdai took its pcap away
    assert rtpengine_calls(pbx.rtpengine) == []
    assert list((pbx.rtpengine.spool / "pcaps").iterdir()) == []
    # each side heard the other's tone, through rtpengine
    a.stop()
    b.stop()
    heard_a, heard_b = a.received_wavs(), b.received_wavs()
    assert heard_a and heard_b
    assert rms(heard_b[-1]) > 0.05
    assert abs(dominant_hz(heard_b[-1]) - 440) < 30
    assert abs(dominant_hz(heard_a[-1]) - 1000) < 30
    # the recording is served as the built-in relay's are, and holds both parties
    media = cdr["recording"]
    assert media.startswith("call_recording_") and media.endswith(".mp3")
    mp3 = pbx.download(media)
    floor = tone_power(mp3, 700)  # a frequency nobody played
    assert tone_power(mp3, 440) > 20 * floor and tone_power(mp3, 1000) > 20 * floor
    assert abs(duration(mp3) - cdr["billing_seconds"]) <= 1.5


def rtpengine_calls(rtpengine: Rtpengine) -> list[str]:
    calls: list[str] = rtpengine.ng("list")["calls"]
    return calls


# The engine alone, against the daemon: RTP "phones" on loopback sockets ----------------

@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RtpengineEngine]:
    daemon = Rtpengine(tmp_path)
    daemon.start()
    eng = RtpengineEngine(host="127.0.0.1", port=daemon.ng_port,
                          recordings_dir=tmp_path / "recordings", spool=daemon.spool,
                          poll_interval=0.1)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()
        daemon.stop()


async def test_engine_relays_both_ways_and_follows_a_new_address(
        engine: RtpengineEngine) -> None:
    a, b, b2 = await open_phone(), await open_phone(), await open_phone()
    s = await engine.create_session(call_id="e1", app_id="app1", record=False)
    ports = s.local_address("a"), s.local_address("b")
    assert ports[0] != ports[1] and ports[0][0] == "127.0.0.1"
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    created = s.leg_activity("a")
    await s.settled()
    # b speaks first: rtpengine already knows where leg a is (no packet from a yet)
    await b.stream(frames(tone_codes(1000, 0.2), ssrc=2), s.local_address("b"))
    await a.stream(frames(tone_codes(440, 0.2), ssrc=1), s.local_address("a"))
    await a.wait_for(10)
    await b.wait_for(10)
    assert all(addr == ports[0] for _, addr, _ in a.received)  # symmetric RTP
    assert all(addr == ports[1] for _, addr, _ in b.received)
    # the engine's poll of rtpengine's counters saw both legs
    for _ in range(40):
        if s.leg_activity("a") > created and s.leg_activity("b") > created:
            break
        await asyncio.sleep(0.05)
    assert s.leg_activity("a") > created and s.leg_activity("b") > created
    # a re-INVITE moves leg b: rtpengine's ports stay, its audio goes to the new place
    s.set_remote("b", *b2.address)
    await s.settled()
    await a.stream(frames(tone_codes(440, 0.2), ssrc=1, ts0=9000), s.local_address("a"))
    await b2.wait_for(5)
    assert (s.local_address("a"), s.local_address("b")) == ports
    assert await s.close() == ""
    assert engine.sessions == 0
    for phone in (a, b, b2):
        phone.close()


async def test_engine_recording_paused_and_flows_refused(engine: RtpengineEngine) -> None:
    a, b = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="e2", app_id="app1", record=True)
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    with pytest.raises(MediaFeatureUnavailable, match="unset TONGDAI_MEDIA_ENGINE"):
        s.leg_media("a", "PCMU")
    s.start_recording()
    assert s.recording.startswith("call_recording_")
    started = time.monotonic()
    await a.stream(frames(tone_codes(440, 1.0), ssrc=0xA), s.local_address("a"))
    s.pause_recording()
    assert s.recording_paused
    await a.stream(frames(tone_codes(1000, 1.0), ssrc=0xA, ts0=13000), s.local_address("a"))
    s.resume_recording()
    await a.stream(frames(tone_codes(440, 1.0), ssrc=0xA, ts0=21000), s.local_address("a"))
    talked = time.monotonic() - started
    name = await s.close()
    assert name == s.recording
    path = engine.recordings_dir / "app1" / name
    assert abs(mp3_seconds(path) - talked) < 1.0
    samples = decode_mp3(path)
    assert tone_level(samples[:len(samples) // 3], 440) > 2500
    assert tone_level(samples[-len(samples) // 3:], 440) > 2500
    assert tone_level(samples, 1000) < 100
    quiet = [max(abs(x) for x in samples[i:i + 800]) for i in range(0, len(samples) - 800, 800)]
    assert sum(1 for q in quiet if q < 200) >= 6
    a.close()
    b.close()


async def test_engine_out_of_ports_is_media_unavailable(engine: RtpengineEngine) -> None:
    sessions = []
    with pytest.raises(MediaUnavailable):
        for n in range(200):  # the daemon has 200 ports: 4 a call
            sessions.append(await engine.create_session(call_id=f"x{n}", app_id="app1",
                                                        record=False))
    assert 30 <= len(sessions) <= 50
    await sessions[0].close()
    await engine.create_session(call_id="again", app_id="app1", record=False)
