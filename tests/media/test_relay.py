"""The relay on loopback with real UDP sockets: forwarding, latching, RTCP, ports."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.media._rtp import Phone, frames, free_range, open_phone, rtcp_rr, rtp, tone_codes

from tongdai.media import MediaUnavailable, RelayEngine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[RelayEngine]:
    eng = RelayEngine("127.0.0.1", free_range(16), tmp_path / "recordings")
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
async def phones() -> AsyncIterator[tuple[Phone, Phone]]:
    a, b = await open_phone(), await open_phone()
    yield a, b
    a.close()
    b.close()


async def test_each_leg_hears_the_other(engine: RelayEngine,
                                        phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    s = await engine.create_session(call_id="c1", app_id="app1", record=False)
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    to_b = frames(tone_codes(440, 0.2), ssrc=0xA)
    to_a = frames(tone_codes(1000, 0.2), ssrc=0xB)
    await asyncio.gather(a.stream(to_b, s.local_address("a")),
                         b.stream(to_a, s.local_address("b")))
    await b.wait_for(len(to_b))
    await a.wait_for(len(to_a))
    # Bytes untouched, in order on loopback, and sent from the port each leg's SDP names.
    assert [d for d, _, _ in b.received] == to_b
    assert [d for d, _, _ in a.received] == to_a
    assert {src for _, src, _ in b.received} == {s.local_address("b")}
    assert {src for _, src, _ in a.received} == {s.local_address("a")}
    assert await s.close() == ""


async def test_latching_beats_a_wrong_sdp_address(engine: RelayEngine,
                                                  phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    nowhere = await open_phone()  # what B's SDP claims (a private address behind NAT)
    s = await engine.create_session(call_id="c2", app_id="app1", record=False)
    s.set_remote("a", *a.address)
    s.set_remote("b", *nowhere.address)
    a.send(rtp(seq=1, ts=0, ssrc=0xA, payload=b"early"), s.local_address("a"))
    await nowhere.wait_for(1)  # before B sends anything, the SDP address is all we have
    b.send(rtp(seq=1, ts=0, ssrc=0xB, payload=b"hello"), s.local_address("b"))
    await a.wait_for(1)
    a.send(rtp(seq=2, ts=160, ssrc=0xA, payload=b"latched"), s.local_address("a"))
    await b.wait_for(1)
    assert b.received[0][0].endswith(b"latched")
    assert len(nowhere.received) == 1
    nowhere.close()
    await s.close()


async def test_relatch_only_on_a_new_ssrc(engine: RelayEngine,
                                          phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    b2 = await open_phone()
    s = await engine.create_session(call_id="c3", app_id="app1", record=False)
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    b.send(rtp(seq=1, ts=0, ssrc=0xB, payload=b"x"), s.local_address("b"))
    await a.wait_for(1)
    # Same SSRC from another address (spoofed or stray): forwarded, but no re-latch.
    b2.send(rtp(seq=2, ts=160, ssrc=0xB, payload=b"y"), s.local_address("b"))
    await a.wait_for(2)
    a.send(rtp(seq=1, ts=0, ssrc=0xA, payload=b"1"), s.local_address("a"))
    await b.wait_for(1)
    assert not b2.received
    # A new SSRC from the new address (a new stream after a re-INVITE): re-latched.
    b2.send(rtp(seq=9, ts=0, ssrc=0xB2, payload=b"z"), s.local_address("b"))
    await a.wait_for(3)
    a.send(rtp(seq=2, ts=160, ssrc=0xA, payload=b"2"), s.local_address("a"))
    await b2.wait_for(1)
    assert b2.received[0][0].endswith(b"2")
    assert len(b.received) == 1
    # Junk (a STUN binding request, version 0) never latches.
    b.send(b"\x00\x01\x00\x00" + bytes(16), s.local_address("b"))
    await a.wait_for(4)
    a.send(rtp(seq=3, ts=320, ssrc=0xA, payload=b"3"), s.local_address("a"))
    await b2.wait_for(2)
    b2.close()
    await s.close()


async def test_rtcp_is_relayed_on_port_plus_one(engine: RelayEngine,
                                                phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    a_rtcp, b_rtcp = await open_phone(), await open_phone()
    s = await engine.create_session(call_id="c4", app_id="app1", record=False)
    host_a, port_a = s.local_address("a")
    host_b, port_b = s.local_address("b")
    assert port_a % 2 == 0 and port_b % 2 == 0
    # B's RTCP goes to B's SDP address + 1 until B sends RTCP itself; here we latch.
    s.set_remote("a", *a.address)
    s.set_remote("b", *b.address)
    b_rtcp.send(rtcp_rr(0xB), (host_b, port_b + 1))
    a_rtcp.send(rtcp_rr(0xA), (host_a, port_a + 1))
    await b_rtcp.wait_for(1)
    assert b_rtcp.received[0][0] == rtcp_rr(0xA)
    assert b_rtcp.received[0][1] == (host_b, port_b + 1)
    # RTCP did not leak onto the RTP ports.
    await asyncio.sleep(0.05)
    assert not a.received and not b.received
    a_rtcp.close()
    b_rtcp.close()
    await s.close()


async def test_rtcp_goes_to_sdp_port_plus_one_before_latching(
        engine: RelayEngine, phones: tuple[Phone, Phone]) -> None:
    a, _ = phones
    s = await engine.create_session(call_id="c5", app_id="app1", record=False)
    port, _ = free_range(2)  # an even/odd pair for "B"
    b_rtp, b_rtcp = await open_phone(port), await open_phone(port + 1)
    s.set_remote("b", *b_rtp.address)
    host_a, port_a = s.local_address("a")
    a.send(rtcp_rr(0xA), (host_a, port_a + 1))
    await b_rtcp.wait_for(1)
    assert b_rtcp.received[0][0] == rtcp_rr(0xA)
    b_rtp.close()
    b_rtcp.close()
    await s.close()


async def test_unusable_sdp_addresses_send_nothing(engine: RelayEngine,
                                                   phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    s = await engine.create_session(call_id="c6", app_id="app1", record=False)
    for host, port in (("0.0.0.0", b.address[1]), ("127.0.0.1", 0),
                       ("phone.example.com", b.address[1]), ("::1", b.address[1])):
        s.set_remote("b", host, port)
        a.send(rtp(seq=1, ts=0, ssrc=1, payload=b"x"), s.local_address("a"))
    await asyncio.sleep(0.1)
    assert not b.received
    await s.close()


async def test_last_activity_follows_rtp(engine: RelayEngine,
                                         phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    s = await engine.create_session(call_id="c7", app_id="app1", record=False)
    created = s.last_activity
    assert created <= time.monotonic()
    await asyncio.sleep(0.05)
    s.set_remote("a", *a.address)
    b.send(rtp(seq=1, ts=0, ssrc=1, payload=b"x"), s.local_address("b"))
    await a.wait_for(1)
    assert s.last_activity >= created + 0.05
    await s.close()


async def test_ports_are_reused_then_freed_and_exhaustion_is_a_clean_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lo, hi = free_range(8)  # four pairs: two calls
    engine = RelayEngine("127.0.0.1", (lo, hi), tmp_path)
    await engine.start()
    try:
        s1 = await engine.create_session(call_id="x1", app_id="app1", record=False)
        s2 = await engine.create_session(call_id="x2", app_id="app1", record=False)
        used = {s1.local_address("a")[1], s1.local_address("b")[1],
                s2.local_address("a")[1], s2.local_address("b")[1]}
        assert used == {lo, lo + 2, lo + 4, lo + 6}
        with caplog.at_level(logging.ERROR, "tongdai.media"), pytest.raises(MediaUnavailable):
            await engine.create_session(call_id="x3", app_id="app1", record=False)
        assert "x3" in caplog.text and "TONGDAI_RTP_PORTS" in caplog.text
        assert engine.sessions == 2
        freed = {s1.local_address("a")[1], s1.local_address("b")[1]}
        assert await s1.close() == ""
        assert await s1.close() == ""  # idempotent
        assert engine.free_port_pairs == 2  # parked for the next calls, still free
        # The range is used up but for s1's legs, still in quarantine: they are taken.
        s3 = await engine.create_session(call_id="x3", app_id="app1", record=False)
        assert {s3.local_address("a")[1], s3.local_address("b")[1]} == freed
        await s3.close()
    finally:
        await engine.stop()
    assert engine.sessions == 0
    assert engine.free_port_pairs == 4
    # Stopped, the sockets are really closed: anyone can bind the ports again.
    for port in range(lo, lo + 8):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_parked_leg_forwards_nothing_and_relatches_for_its_next_call(
        tmp_path: Path, phones: tuple[Phone, Phone]) -> None:
    a, b = phones
    lo, hi = free_range(8)
    engine = RelayEngine("127.0.0.1", (lo, hi), tmp_path)
    await engine.start()
    try:
        s1 = await engine.create_session(call_id="p1", app_id="app1", record=False)
        s1.set_remote("a", *a.address)
        s1.set_remote("b", *b.address)
        b.send(rtp(seq=1, ts=0, ssrc=2, payload=b"x"), s1.local_address("b"))
        await a.wait_for(1)
        leg_a, leg_b = s1.local_address("a"), s1.local_address("b")
        await s1.close()
        s1.set_remote("a", *b.address)  # too late: ignored, the leg is parked
        # The ended call's device keeps sending: a parked leg forwards nothing.
        b.send(rtp(seq=2, ts=160, ssrc=2, payload=b"y"), leg_b)
        a.send(rtp(seq=1, ts=0, ssrc=1, payload=b"z"), leg_a)
        await asyncio.sleep(0.1)
        assert len(a.received) == 1 and not b.received
        # Every other pair is in use: the next call gets the parked legs, latching
        # afresh (to its SDP address, not to the ended call's device).
        s2 = await engine.create_session(call_id="p2", app_id="app1", record=False)
        s3 = await engine.create_session(call_id="p3", app_id="app1", record=False)
        assert {s3.local_address("a"), s3.local_address("b")} == {leg_a, leg_b}
        assert s3.packets_relayed == 0
        s3.set_remote("a", *b.address)
        s3.set_remote("b", *b.address)
        a.send(rtp(seq=1, ts=0, ssrc=3, payload=b"w"), s3.local_address("a"))
        await b.wait_for(1)
        assert len(a.received) == 1
        await asyncio.gather(s2.close(), s3.close())
    finally:
        await engine.stop()


async def test_ports_held_by_others_are_skipped(tmp_path: Path) -> None:
    lo, hi = free_range(8)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", lo + 1))  # someone holds the RTCP port of the first pair
    engine = RelayEngine("127.0.0.1", (lo, hi), tmp_path)
    await engine.start()
    try:
        s = await engine.create_session(call_id="y1", app_id="app1", record=False)
        assert lo not in (s.local_address("a")[1], s.local_address("b")[1])
        await s.close()
    finally:
        squatter.close()
        await engine.stop()


async def test_misuse_is_reported(tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", free_range(8), tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        await engine.create_session(call_id="z", app_id="app1", record=True)
    await engine.start()
    free = engine.free_port_pairs
    with pytest.raises(ValueError, match="app_id"):
        await engine.create_session(call_id="z", app_id="../etc", record=True)
    assert engine.free_port_pairs == free  # nothing leaked
    await engine.stop()


async def test_host_name_is_resolved_once(tmp_path: Path) -> None:
    engine = RelayEngine("localhost", free_range(8), tmp_path)
    await engine.start()
    try:
        s = await engine.create_session(call_id="h", app_id="app1", record=False)
        host, _ = s.local_address("a")
        assert ipaddress.ip_address(host).is_loopback
        await s.close()
    finally:
        await engine.stop()
