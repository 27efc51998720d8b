"""A stray ACK in a call's dialog is not the ACK of our 200 (RFC 3261 §13.2.2.4).

A carrier calls a DID; the device answers; tongdai sends the carrier a 200. An ACK
carrying another CSeq number is ignored: the 200 keeps being retransmitted, and when
the real ACK never comes the call ends (§13.3.1.4) with a BYE and a CDR. In a late-offer
call the stray ACK's SDP never reaches the device.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from tests.pbx.carrier import DID, SDP, answered, is_invite_200, route_did_to_alice
from tests.pbx.peers import Pred, UdpPeer, sip_text

from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx
from tongdai.sip.message import Request, Response
from tongdai.sip.transaction import TimerConfig
from tongdai.store.records import Cdr

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcarinv{n};rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car{n}
To: <sip:{did}@127.0.0.1>
Call-ID: stray-ack-{n}
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port}>
{ctype}
{body}"""

ACK = """ACK sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car{n}
To: {to}
Call-ID: stray-ack-{n}
CSeq: {cseq} ACK
{ctype}
{body}"""


class Call:
    def __init__(self, pbx: Pbx, app_id: str, carrier: UdpPeer, alice: UdpPeer) -> None:
        self.pbx = pbx
        self.app_id = app_id
        self.carrier = carrier
        self.alice = alice


@pytest.fixture
async def call(pbx: Pbx) -> AsyncIterator[Call]:
    # Fast timers (T1 = 50 ms): the unacknowledged 200 gives up after 64*T1 = 3.2 s.
    pbx.shell.endpoint.cfg = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
    app = await pbx.store.create_app("t")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    try:
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        yield Call(pbx, app.app_id, carrier, alice)
    finally:
        carrier.close()
        alice.close()


def _msg(template: str, body: str = "", **kw: object) -> bytes:
    ctype = "Content-Type: application/sdp\n" if body else ""
    return sip_text(template.format(did=DID, ctype=ctype, body=body, **kw))


def _is(method: str) -> Pred:
    return lambda m: isinstance(m, Request) and m.method == method


async def _answered(c: Call, n: int, *, late: bool) -> tuple[Response, Request]:
    """Carrier INVITEs the DID, alice answers: (the carrier's 200, alice's INVITE)."""
    body = "" if late else SDP.format(port=40000)
    return await answered(c.carrier, c.alice, _msg(INVITE, body, port=c.carrier.port, n=n))


async def _cdrs(c: Call) -> list[Cdr]:
    _, rows = await c.pbx.store.list_cdrs(c.app_id, 0, time.time() + 60, limit=10, offset=0)
    return list(rows)


async def test_a_stray_ack_leaves_the_200_unacknowledged_and_the_call_ends(call: Call) -> None:
    c = call
    ok, _ = await _answered(c, 1, late=False)
    to = ok.headers.get("to")
    # CSeq 2 on the INVITE's own branch: the worst case, it used to stop the 200.
    await c.carrier.send(_msg(ACK, port=c.carrier.port, n=1, to=to, cseq=2,
                              branch="z9hG4bKcarinv1"))
    later = await c.carrier.collect(1.0)
    assert sum(1 for m in later if is_invite_200(m)) >= 3  # the 200 is still retransmitted
    # No ACK ever comes: tongdai gives up on the session (§13.3.1.4) ...
    bye = await c.carrier.recv(_is("BYE"), wait=5.0)
    assert isinstance(bye, Request)
    await c.carrier.answer(bye, 200)
    # ... hangs up the device too, and the call has its CDR.
    alice_bye = await c.alice.recv(_is("BYE"), wait=3.0)
    assert isinstance(alice_bye, Request)
    await c.alice.answer(alice_bye, 200)
    for _ in range(50):
        if rows := await _cdrs(c):
            break
        await c.carrier.collect(0.1)
    (cdr,) = rows
    assert cdr.did_number == DID and cdr.direction == "to_ab"
    assert cdr.hangup_by == "system"


async def test_the_real_ack_after_a_stray_one_confirms_the_call(call: Call) -> None:
    c = call
    ok, _ = await _answered(c, 2, late=False)
    to = ok.headers.get("to")
    await c.carrier.send(_msg(ACK, port=c.carrier.port, n=2, to=to, cseq=7,
                              branch="z9hG4bKstray2"))
    await c.carrier.collect(0.3)
    await c.carrier.send(_msg(ACK, port=c.carrier.port, n=2, to=to, cseq=1,
                              branch="z9hG4bKack2"))
    await c.carrier.collect(0.3)
    quiet = await c.carrier.collect(4.0)
    assert not any(is_invite_200(m) for m in quiet)  # retransmissions stopped
    assert not any(isinstance(m, Request) and m.method == "BYE" for m in quiet)
    assert await _cdrs(c) == []  # still up


async def test_a_stray_ack_does_not_answer_a_late_offer(call: Call) -> None:
    c = call
    ok, _ = await _answered(c, 3, late=True)  # alice's 200 carries the offer
    to = ok.headers.get("to")
    # tongdai holds alice's ACK until the carrier's ACK brings the answer SDP.
    assert not any(_is("ACK")(m) for m in c.alice.inbox)
    await c.carrier.send(_msg(ACK, SDP.format(port=46666), port=c.carrier.port, n=3, to=to,
                              cseq=5, branch="z9hG4bKstray3"))
    assert not any(_is("ACK")(m) for m in await c.alice.collect(0.5))
    await c.carrier.send(_msg(ACK, SDP.format(port=40002), port=c.carrier.port, n=3, to=to,
                              cseq=1, branch="z9hG4bKack3"))
    ack = await c.alice.recv(_is("ACK"))
    assert isinstance(ack, Request) and ack.cseq[0] == 1 and b"m=audio" in ack.body
