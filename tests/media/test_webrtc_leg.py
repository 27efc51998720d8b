"""A WebRTC leg of the relay against a real DTLS-SRTP peer on loopback: ICE-lite answers
the peer's check, DTLS completes, SRTP is decrypted toward the plain leg and the plain
leg's RTP is encrypted toward the peer; a wrong ICE password or fingerprint fails."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from tests.media._rtp import frames, tone_codes
from tests.media.webrtc_peer import WebRtcPeer

from tongdai.media.relay import RelayEngine
from tongdai.media.webrtc.identity import DtlsIdentity
from tongdai.media.webrtc.params import IceDtls


async def _plain_socket() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s, s.getsockname()[1]


async def _until(cond: object, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_webrtc_leg_bridges_srtp_to_plain_rtp(tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", (42000, 42100), tmp_path)
    await engine.start()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    try:
        session = await engine.create_session(call_id="c1", app_id="app", record=False)
        local = session.webrtc_local("a", "passive")
        assert local.fingerprint == f"sha-256 {engine.identity.fingerprint}"
        t, peer = await loop.create_datagram_endpoint(
            lambda: WebRtcPeer(DtlsIdentity()), local_addr=("127.0.0.1", 0))
        transports.append(t)
        session.webrtc_remote("a", peer.params)
        plain, plain_port = await _plain_socket()
        session.set_remote("b", "127.0.0.1", plain_port)
        peer.start(session.local_address("a"), local)
        await asyncio.wait_for(peer.connected, 5)
        await _until(lambda: session.webrtc_connected("a"))

        # browser -> plain: decrypted, bytes as sent
        out = frames(tone_codes(440, 0.2), ssrc=1111)
        for p in out:
            peer.send_rtp(p)
        got = [await asyncio.wait_for(loop.sock_recv(plain, 2048), 2) for _ in out]
        assert got == out

        # plain -> browser: encrypted, decrypted by the peer
        back = frames(tone_codes(1000, 0.2), ssrc=2222)
        b_addr = session.local_address("b")
        for p in back:
            plain.sendto(p, b_addr)
        await _until(lambda: len(peer.received) == len(back))
        assert [p for _, p in peer.received] == back
        # The browser's nominated address is where its media goes.
        assert peer.transport is not None
        plain.close()
    finally:
        for t in transports:
            t.close()
        await engine.stop()


@pytest.mark.asyncio
async def test_webrtc_leg_refuses_wrong_ice_password_and_wrong_fingerprint(
        tmp_path: Path) -> None:
    engine = RelayEngine("127.0.0.1", (42100, 42200), tmp_path)
    await engine.start()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    try:
        session = await engine.create_session(call_id="c2", app_id="app", record=False)
        local = session.webrtc_local("a", "passive")
        t, peer = await loop.create_datagram_endpoint(
            lambda: WebRtcPeer(DtlsIdentity()), local_addr=("127.0.0.1", 0))
        transports.append(t)
        # A fingerprint that is not the peer's certificate's.
        wrong = IceDtls(ufrag=peer.ufrag, pwd=peer.pwd, setup="active",
                        fingerprint="sha-256 " + ":".join(["AB"] * 32))
        session.webrtc_remote("a", wrong)
        bad = IceDtls(ufrag=local.ufrag, pwd="x" * 24, fingerprint=local.fingerprint,
                      setup="passive")
        peer.start(session.local_address("a"), bad)
        await asyncio.sleep(0.3)
        assert not peer.ice_ok.done()  # 401: no success response
        peer.start(session.local_address("a"), local)
        await asyncio.wait_for(peer.ice_ok, 5)
        await asyncio.sleep(0.5)
        assert not session.webrtc_connected("a")
    finally:
        for t in transports:
            t.close()
        await engine.stop()


async def test_a_plain_device_answering_instead_of_the_browser_gets_plain_rtp(
        tmp_path: Path) -> None:
    """A device rung in a browser and on a desk phone at once: the leg was offered as
    WebRTC, the desk phone answers and sends plain RTP, which is relayed both ways."""
    engine = RelayEngine("127.0.0.1", (42200, 42300), tmp_path)
    await engine.start()
    loop = asyncio.get_running_loop()
    try:
        session = await engine.create_session(call_id="c3", app_id="app", record=False)
        session.webrtc_local("b", "actpass")  # the offer that went to the browser
        phone, phone_port = await _plain_socket()
        other, other_port = await _plain_socket()
        session.set_remote("a", "127.0.0.1", other_port)
        session.set_remote("b", "127.0.0.1", phone_port)
        first = frames(tone_codes(440, 0.1), ssrc=3333)
        for p in first:
            phone.sendto(p, session.local_address("b"))
        got = [await asyncio.wait_for(loop.sock_recv(other, 2048), 2) for _ in first]
        assert got == first
        back = frames(tone_codes(1000, 0.1), ssrc=4444)
        for p in back:
            other.sendto(p, session.local_address("a"))
        assert [await asyncio.wait_for(loop.sock_recv(phone, 2048), 2) for _ in back] == back
        assert not session.webrtc_connected("b")
        phone.close()
        other.close()
    finally:
        await engine.stop()


async def test_tongdai_plays_to_and_hears_digits_from_a_webrtc_leg(tmp_path: Path) -> None:
    """A browser's call in a flow: prompts go out SRTP-protected, RFC 4733 digits come
    in decrypted."""
    import struct

    from tongdai.media.prompts import Prompt

    engine = RelayEngine("127.0.0.1", (42300, 42400), tmp_path)
    await engine.start()
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    try:
        session = await engine.create_session(call_id="c4", app_id="app", record=False)
        local = session.webrtc_local("a", "passive")
        t, peer = await loop.create_datagram_endpoint(
            lambda: WebRtcPeer(DtlsIdentity()), local_addr=("127.0.0.1", 0))
        transports.append(t)
        session.webrtc_remote("a", peer.params)
        peer.start(session.local_address("a"), local)
        await asyncio.wait_for(peer.connected, 5)
        await _until(lambda: session.webrtc_connected("a"))
        media = session.leg_media("a", "PCMU")
        media.set_dtmf_pt(101)
        await media.play(Prompt(name="beep", pcm=b"\x10\x00" * 1600), stop_on_dtmf=False)
        assert len(peer.received) >= 8
        assert all(p[1] & 0x7F == 0 for _, p in peer.received)  # PCMU, decrypted
        # Digit 5 (RFC 4733 §2.3): three packets of one event, the last with E set.
        for seq, (end, dur) in enumerate(((0, 160), (0, 320), (0x80, 480))):
            peer.send_rtp(struct.pack("!BBHIIBBH", 0x80, 101, 7000 + seq, 90000, 5555, 5,
                                      end | 10, dur))
        assert await media.collect(max_digits=1, timeout=3) == "5"
    finally:
        for t in transports:
            t.close()
        await engine.stop()
