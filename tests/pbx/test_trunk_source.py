"""Which requests come from a trunk, over real sockets: only its transport and port count.

Over TCP a connection is the trunk's when its remote end is the trunk's host and port:
the carrier connected from its configured port, or tongdai opened the connection to
the trunk. Any other port of the carrier's host is a stranger: 403, and no CDR. A DID
that belongs to no app behind the carrier: 404, and no CDR either.
"""

from __future__ import annotations

import asyncio
import socket
import time

from tests.pbx.peers import Message, Pred, TcpPeer, UdpPeer, register, sip_text

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip.message import Request, Response
from tongdai.store.records import Cdr

DID_A, DID_B = "02873019555", "02873019666"

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bKsrc{n}
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=src{n}
To: <sip:{did}@127.0.0.1>
Call-ID: trunk-source-{n}
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port};transport={transport_lc}>

"""

_n = iter(range(1, 1000))


def _invite(did: str, port: int, transport: str = "TCP") -> tuple[bytes, str]:
    n = next(_n)
    text = INVITE.format(did=did, transport=transport, transport_lc=transport.lower(),
                         port=port, n=n)
    return sip_text(text), f"trunk-source-{n}"


def _final_of(call_id: str) -> Pred:
    return lambda m: (isinstance(m, Response) and m.status >= 200
                      and m.call_id == call_id)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cdrs(pbx: Pbx, app_id: str) -> list[Cdr]:
    _, rows = await pbx.store.list_cdrs(app_id, 0, time.time() + 60, limit=20, offset=0)
    return list(rows)


async def _tenant(pbx: Pbx, name: str, did: str, *, port: int, transport: str) -> str:
    app = await pbx.store.create_app(name)
    await pbx.store.add_device(app.app_id, f"dev{name}",
                               digest_keys(f"dev{name}", pbx.settings.domain, "pw-secret-1"))
    await pbx.store.add_trunk(app.app_id, "carrier", host="127.0.0.1", port=port,
                              transport=transport)
    await pbx.store.add_did(app.app_id, did, f"dev{name}")
    return app.app_id


async def test_tcp_from_another_port_of_the_carriers_host_is_a_stranger(pbx: Pbx) -> None:
    port = _free_tcp_port()
    a = await _tenant(pbx, "a", DID_A, port=port, transport="tcp")
    b = await _tenant(pbx, "b", DID_B, port=port, transport="udp")
    await pbx.directory.check()
    conn = await TcpPeer.connect(pbx.sip_port)  # an ephemeral port, not the trunk's
    try:
        for did in (DID_A, DID_B, "02873019000"):
            data, call_id = _invite(did, conn.port)
            await conn.send(data)
            resp = await conn.recv(_final_of(call_id))
            assert isinstance(resp, Response) and resp.status == 403, did
    finally:
        await conn.close()
    await asyncio.sleep(0.3)
    assert await _cdrs(pbx, a) == [] and await _cdrs(pbx, b) == []


async def test_tcp_from_the_trunks_port_is_the_trunk(pbx: Pbx) -> None:
    port = _free_tcp_port()
    a = await _tenant(pbx, "a", DID_A, port=port, transport="tcp")
    b = await _tenant(pbx, "b", DID_B, port=port, transport="tcp")
    await pbx.directory.check()
    conn = await TcpPeer.connect(pbx.sip_port, local_port=port)
    try:
        data, call_id = _invite("02873019000", port)  # nobody's DID
        await conn.send(data)
        resp = await conn.recv(_final_of(call_id))
        assert isinstance(resp, Response) and resp.status == 404
        data, call_id = _invite(DID_B, port)  # B's DID, B's device offline
        await conn.send(data)
        resp = await conn.recv(_final_of(call_id))
        assert isinstance(resp, Response) and resp.status == 480
    finally:
        await conn.close()
    for _ in range(30):
        if rows := await _cdrs(pbx, b):
            break
        await asyncio.sleep(0.1)
    (cdr,) = rows
    assert cdr.did_number == DID_B and cdr.direction == "to_ab"
    assert await _cdrs(pbx, a) == []


async def test_a_connection_tongdai_opened_to_the_trunk_is_the_trunk(pbx: Pbx) -> None:
    """Click-to-call dials out over a TCP trunk; the carrier then sends a call of its
    own back over that connection (RFC 3261 §18: connection reuse)."""
    accepted: asyncio.Queue[TcpPeer] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put(TcpPeer(r, w))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    b = await _tenant(pbx, "b", DID_B, port=port, transport="tcp")
    await pbx.store.add_device(b, "agent",
                               digest_keys("agent", pbx.settings.domain, "agent-secret"))
    await pbx.directory.check()
    agent = UdpPeer(pbx.sip_port)
    conn: TcpPeer | None = None
    try:
        await register(agent, "agent", "agent-secret")
        await pbx.calls.click_to_call(app_id=b, sip_user="agent", number="0901234567")
        ring = await agent.recv(_is_invite)
        assert isinstance(ring, Request)
        await agent.answer(ring, 200, to_tag="ag1", contact=f"<sip:agent@127.0.0.1:{agent.port}>",
                           body=b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
                                b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n")
        conn = await asyncio.wait_for(accepted.get(), 5)
        out = await conn.recv(_is_invite)  # tongdai's call to the number
        assert isinstance(out, Request) and out.uri.startswith("sip:0901234567@")
        # The carrier's own call comes back on that connection, from tongdai's side
        # the trunk's host:port.
        data, call_id = _invite(DID_B, port)
        await conn.send(data)
        resp = await conn.recv(_final_of(call_id))
        assert isinstance(resp, Response) and resp.status == 480  # B's device is offline
    finally:
        agent.close()
        if conn is not None:
            await conn.close()
        server.close()
    for _ in range(30):
        rows = [c for c in await _cdrs(pbx, b) if c.did_number == DID_B]
        if rows:
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 1 and rows[0].direction == "to_ab"


def _is_invite(m: Message) -> bool:
    return isinstance(m, Request) and m.method == "INVITE"
