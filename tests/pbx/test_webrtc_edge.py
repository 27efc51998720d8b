"""Which SDP the call driver sends a device (pbx/webrtc_edge): WebRTC SDP to a browser,
whether we reach it over its websocket or over the UDP of the edge in front of us
(docs/scaling.md), where only its Contact (the Request-URI) says ``transport=ws``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.media._rtp import free_range

from tongdai.media import RelayEngine
from tongdai.media.engine import MediaSession
from tongdai.pbx.webrtc_edge import WebRtcEdge
from tongdai.sip.message import Headers, Request
from tongdai.sip.peer import Peer

EDGE = Peer("udp", "127.0.0.1", 5999)


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[MediaSession]:
    engine = RelayEngine("127.0.0.1", free_range(8), tmp_path)
    await engine.start()
    try:
        yield await engine.create_session(call_id="c1", app_id="app", record=False)
    finally:
        await engine.stop()


def _invite(uri: str, port: int) -> Request:
    """What the call core sends leg b: plain SDP pointing at leg b's relay port."""
    sdp = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
           f"a=rtpmap:101 telephone-event/8000\r\n")
    headers = Headers([("call-id", f"sip-{uri}"), ("content-type", "application/sdp")])
    return Request(method="INVITE", uri=uri, headers=headers, body=sdp.encode())


def _sent(uri: str, peer: Peer, session: MediaSession) -> bytes:
    edge = WebRtcEdge()
    edge.media_created("c1", session)
    req = _invite(uri, session.local_address("b")[1])
    edge.outgoing(req, peer, {"c1": session})
    return req.body


@pytest.mark.asyncio
@pytest.mark.parametrize("uri", ["sip:df7jal23@r5a1qvbk.invalid;transport=ws",
                                 "sip:df7jal23@r5a1qvbk.invalid;transport=WSS;ob"])
async def test_a_websocket_contact_behind_the_edge_gets_webrtc_sdp(
        uri: str, session: MediaSession) -> None:
    body = _sent(uri, EDGE, session)
    assert b"UDP/TLS/RTP/SAVPF" in body and b"a=ice-lite" in body
    assert b"a=fingerprint:sha-256 " in body and b"a=setup:actpass" in body


@pytest.mark.asyncio
@pytest.mark.parametrize("uri", ["sip:alice@127.0.0.1:5070", "sip:alice@127.0.0.1;transport=tcp",
                                 "tel:+15551234"])
async def test_a_phone_behind_the_edge_gets_plain_sdp(uri: str, session: MediaSession) -> None:
    body = _sent(uri, EDGE, session)
    assert b"RTP/AVP 0 101" in body and b"ice" not in body


@pytest.mark.asyncio
async def test_a_websocket_peer_gets_webrtc_sdp_whatever_its_contact(
        session: MediaSession) -> None:
    body = _sent("sip:alice@127.0.0.1:5070", Peer("ws", "127.0.0.1", 40000), session)
    assert b"UDP/TLS/RTP/SAVPF" in body
