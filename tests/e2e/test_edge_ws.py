"""A browser (SIP over WebSocket, RFC 7118) through the Kamailio edge of ``deploy/run``:
it registers over the edge's websocket port (REGISTER forwarded with a Path naming its
connection) and is rung by a click-to-call POSTed to either node. The INVITE, the ACK
and the 200 to its BYE reach it only if the edge delivers them over its websocket.

The browser is the ``websockets`` client of tests/transport/test_ws.py; the topology
and the carrier are those of tests/e2e/test_scale_out.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.conftest import free_port, wait_until
from tests.e2e.test_scale_out import (  # noqa: F401  (topology: the fixture)
    _app,
    _call_state,
    _carrier,
    _cdrs,
    _cli,
    _headers,
    _marks,
    topology,
)
from tests.transport.test_ws import PASSWORD, SIP, Browser, Message
from websockets.asyncio.client import connect

from tongdai.deploy import Node, Topology
from tongdai.sip.message import Request, Response, make_response, serialize

pytestmark = _marks()

CONTACT = "<sip:agent@df7jal23ls0d.invalid;transport=ws>"


def _is(method: str) -> Callable[[Message], bool]:
    return lambda m: isinstance(m, Request) and m.method == method


def _sdp(port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()


async def _answer(browser: Browser, invite: Request) -> Response:
    """180 then 200 with SDP, each with the INVITE's Record-Route (RFC 3261 §12.1.1)."""
    rr = invite.headers.values("record-route")
    ok = make_response(invite, 200, to_tag="wsb", body=_sdp(free_port()),
                       content_type="application/sdp")
    for status, resp in ((180, make_response(invite, 180, to_tag="wsb")), (200, ok)):
        for value in rr:
            resp.headers.add("record-route", value)
        resp.headers.add("contact", CONTACT)
        await browser.send(serialize(resp))
        assert resp.status == status
    return ok


def _bye(invite: Request, ok: Response) -> str:
    """The browser's BYE: to the node's Contact, through the Record-Route set."""
    lines = [
        f"BYE {invite.headers.get('contact', '').strip('<>')} SIP/2.0",
        f"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKbye{invite.call_id[:8]}",
        "Max-Forwards: 70",
        *(f"Route: {v}" for v in invite.headers.values("record-route")),
        f"From: {ok.headers.get('to')}",
        f"To: {invite.headers.get('from')}",
        f"Call-ID: {invite.call_id}",
        "CSeq: 1 BYE",
    ]
    return "\r\n".join([*lines, "Content-Length: 0", "", ""])


def _click_to_call(node: Node, app_id: str, secret: str) -> str:
    r = wait_until(lambda: (x := httpx.post(
        f"{node.http}/oapi/v1/call/click-to-call/0901234567", headers=_headers(app_id, secret),
        json={"sipUser": "agent", "sipPassword": PASSWORD}, timeout=10))
        .status_code == 200 and x, timeout=15)
    return str(r.json()["call_id"])


def _cdr(node: Node, app_id: str, call_id: str) -> dict[str, Any]:
    row: dict[str, Any] = wait_until(lambda: next(
        (r for r in _cdrs(node, app_id) if r["call_id"] == call_id), None), timeout=20)
    return row


async def test_a_browser_registered_over_the_edge_websocket_is_rung_from_either_node(
    topology: Topology, audio: dict[str, Path], tmp_path: Path,  # noqa: F811
) -> None:
    edge = topology.edge
    assert edge is not None
    carrier_port = free_port()
    app_id, secret = _app(topology, carrier_port)
    _cli(topology, "device", "add", "--app", app_id, "agent", "--password", PASSWORD)
    async with connect(edge.ws_url, subprotocols=SIP, open_timeout=10) as ws:
        browser = Browser(ws)
        chal, ok = await browser.register()
        assert (chal.status, ok.status) == (401, 200), ok.reason
        for node in topology.nodes:
            carrier = _carrier(tmp_path, carrier_port, audio["tone1000_pcmu"], calls=1)
            call_id = await asyncio.to_thread(_click_to_call, node, app_id, secret)
            invite = await browser.recv(_is("INVITE"), wait=15)
            assert isinstance(invite, Request)
            # The node sent it to the edge, which relayed it over this websocket.
            assert invite.top_via.transport == "WS"
            assert invite.uri == CONTACT.strip("<>")
            # The node reaches us over the edge's UDP, yet our Contact says transport=ws:
            # the offer is WebRTC's (ICE-lite, DTLS-SRTP), as a real browser needs.
            assert b"UDP/TLS/RTP/SAVPF" in invite.body and b"a=ice-lite" in invite.body
            answer = await _answer(browser, invite)
            # The node's ACK comes back through the edge (the ;alias= of our Contact).
            ack = await browser.recv(_is("ACK"))
            assert ack.call_id == invite.call_id
            await asyncio.to_thread(wait_until, lambda n=node: _call_state(
                n, app_id, secret, "agent") == "talking", 10)
            await browser.send(_bye(invite, answer))
            bye_ok = await browser.recv(lambda m: isinstance(m, Response)
                                        and m.cseq == (1, "BYE"), wait=10)
            assert isinstance(bye_ok, Response) and bye_ok.status == 200
            assert await asyncio.to_thread(carrier.wait, 30) == 0
            cdr = await asyncio.to_thread(_cdr, node, app_id, call_id)
            assert cdr["status_detail"] == "SUCCESS"
            assert call_id in node.log()  # this node placed the call, through the edge
