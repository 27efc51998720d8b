"""A transfer to one of the app's queues on a running server, with its real media
relay and flow runner: the Open API's transfer names ``queue:sales``; the device that
answered the carrier's caller gets BYE, the caller hears the queue's music, the
queue's agent is rung in the caller's codec and takes the call, and the one record is
the queued caller's (SUCCESS, the agent as callee). A queue that does not exist, or a
callee to be queued, is refused; a device that shares a queue's name is the device."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tests.pbx.carrier import DID, SDP, answered, route_did_to_alice
from tests.pbx.peers import UdpPeer, register, sip_text

from tongdai.flows.store import QueueRec
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.protocol import InvalidNumber
from tongdai.server import Pbx, build, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Request, Response
from tongdai.sip.sdp import SessionDescription
from tongdai.store.records import Cdr

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKq2q1;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: <sip:{did}@127.0.0.1>
Call-ID: queue-transfer-1
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port}>
Content-Type: application/sdp

{body}"""
IN_DIALOG = """{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKq2q{cseq};rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: queue-transfer-1
CSeq: {cseq} {method}

"""


class Ear(asyncio.DatagramProtocol):
    """The caller's RTP port: notes that tongdai sends it something."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrived.set()


def _is(method: str):  # type: ignore[no-untyped-def]
    return lambda m: isinstance(m, Request) and m.method == method



async def _written_cdrs(pbx: Pbx, app_id: str) -> list[Cdr]:
    """The app's CDRs once the first is written (up to 5 s)."""
    for _ in range(100):
        _, rows = await pbx.store.list_cdrs(app_id, 0, time.time() + 60, limit=5, offset=0)
        if rows:
            return list(rows)
        await asyncio.sleep(0.05)
    return []

async def test_a_transfer_to_a_queue_queues_the_caller_and_its_agent_answers(
    tmp_path: Path,
) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42400-42499"))
    carrier, alice, bob = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    loop = asyncio.get_running_loop()
    transport, ear = await loop.create_datagram_endpoint(Ear, local_addr=("127.0.0.1", 0))
    try:
        app = await pbx.store.create_app("t")
        for user in ("alice", "bob"):
            await pbx.store.add_device(app.app_id, user, digest_keys(
                user, pbx.settings.domain, f"{user}-secret"))
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        await register(bob, "bob", "bob-secret")
        for name in ("sales", "alice"):
            await pbx.store.add_queue(QueueRec(app_id=app.app_id, name=name, agents=("bob",)))
        await pbx.directory.check()
        ok, _ = await answered(carrier, alice, sip_text(INVITE.format(
            did=DID, port=carrier.port,
            body=SDP.format(port=transport.get_extra_info("sockname")[1]))))
        ruri = (ok.headers.get("contact") or "").strip("<>")
        to = ok.headers.get("to") or ""
        await carrier.send(sip_text(IN_DIALOG.format(method="ACK", ruri=ruri, cseq=1,
                                                     port=carrier.port, to=to)))
        [live] = pbx.calls.live_calls(app.app_id)
        call_id = live["call_id"]

        # Refused before anything happens: no such queue.
        with pytest.raises(InvalidNumber):
            await pbx.calls.transfer(app_id=app.app_id, call_id=call_id, to="queue:nope")
        # A device named like a queue is the device (the bare name is ambiguous).
        dest = await pbx.calls.routing.transfer_target(app.app_id, "alice")
        assert dest.queue is None and dest.devices == ("alice",)
        # Another app's queue is nothing to this one.
        other = await pbx.store.create_app("u")
        dest = await pbx.calls.routing.transfer_target(other.app_id, "sales")
        assert dest.queue is None

        await pbx.calls.transfer(app_id=app.app_id, call_id=call_id, to="queue:sales")
        bye = await alice.recv(_is("BYE"))
        assert isinstance(bye, Request)
        await alice.answer(bye, 200)
        ear.arrived.clear()
        await asyncio.wait_for(ear.arrived.wait(), 3)  # the queue's music
        invite = await bob.recv(_is("INVITE"), wait=5)
        assert isinstance(invite, Request)
        offer = SessionDescription.parse(invite.body).media[0]
        assert offer.formats[0] == "0"  # the codec the caller talks
        await bob.answer(invite, 200, to_tag="bob1", body=SDP.format(port=41002).encode(),
                         contact=f"<sip:bob@127.0.0.1:{bob.port}>")
        await bob.recv(_is("ACK"))
        [talking] = pbx.calls.live_calls(app.app_id)
        assert talking["state"] == "talking" and talking["callee"]["username"] == "bob"
        assert talking["devices"] == ["bob"]

        await carrier.send(sip_text(IN_DIALOG.format(method="BYE", ruri=ruri, cseq=2,
                                                     port=carrier.port, to=to)))
        await carrier.recv(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")
        bye = await bob.recv(_is("BYE"))
        assert isinstance(bye, Request)
        await bob.answer(bye, 200)
        [cdr] = await _written_cdrs(pbx, app.app_id)
        assert cdr.status_detail == "SUCCESS" and cdr.callee["username"] == "bob"
        assert cdr.caller["number"] == "0901234567" and cdr.hangup_by == "caller"
        assert {"alice", "bob"} <= set(cdr.sip_users)
    finally:
        await shutdown(pbx)
        transport.close()
        carrier.close()
        alice.close()
        bob.close()


async def test_the_caller_leaves_and_the_callee_waits_in_the_queue(tmp_path: Path) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42500-42599"))
    carrier, alice, bob = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    loop = asyncio.get_running_loop()
    transport, ear = await loop.create_datagram_endpoint(Ear, local_addr=("127.0.0.1", 0))
    alice_rtp = transport.get_extra_info("sockname")[1]
    try:
        app = await pbx.store.create_app("t")
        for user in ("alice", "bob"):
            await pbx.store.add_device(app.app_id, user, digest_keys(
                user, pbx.settings.domain, f"{user}-secret"))
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        await register(bob, "bob", "bob-secret")
        await pbx.store.add_queue(QueueRec(app_id=app.app_id, name="sales", agents=("bob",)))
        await pbx.directory.check()
        await carrier.send(sip_text(INVITE.format(did=DID, port=carrier.port,
                                                  body=SDP.format(port=41000))))
        invite = await alice.recv(_is("INVITE"))
        assert isinstance(invite, Request)
        await alice.answer(invite, 200, to_tag="al1", body=SDP.format(port=alice_rtp).encode(),
                           contact=f"<sip:alice@127.0.0.1:{alice.port}>")
        ok = await carrier.recv(lambda m: isinstance(m, Response) and m.status == 200)
        assert isinstance(ok, Response)
        ruri = (ok.headers.get("contact") or "").strip("<>")
        await carrier.send(sip_text(IN_DIALOG.format(method="ACK", ruri=ruri, cseq=1,
                                                     port=carrier.port,
                                                     to=ok.headers.get("to") or "")))
        await alice.recv(_is("ACK"))
        [live] = pbx.calls.live_calls(app.app_id)

        # The carrier's caller hands alice on to the queue and leaves.
        await pbx.calls.transfer(app_id=app.app_id, call_id=live["call_id"],
                                 to="queue:sales", replace="caller")
        bye = await carrier.recv(_is("BYE"))
        assert isinstance(bye, Request)
        await carrier.answer(bye, 200)
        # alice is re-INVITEd onto the flow's media, in her codec, sendrecv.
        reinvite = await alice.recv(_is("INVITE"))
        assert isinstance(reinvite, Request) and reinvite.headers.get("to", "").endswith("al1")
        offer = SessionDescription.parse(reinvite.body).media[0]
        assert offer.formats[0] == "0" and offer.direction == "sendrecv"
        await alice.answer(reinvite, 200, to_tag="al1",
                           body=SDP.format(port=alice_rtp).encode(),
                           contact=f"<sip:alice@127.0.0.1:{alice.port}>")
        await alice.recv(_is("ACK"))
        ear.arrived.clear()
        await asyncio.wait_for(ear.arrived.wait(), 3)  # the queue's music
        [waiting] = pbx.calls.live_calls(app.app_id)
        assert waiting["state"] == "ringing" and waiting["devices"] == ["alice"]
        assert waiting["caller"]["queue"] == "sales"
        assert waiting["callee"]["username"] == "alice"

        ring = await bob.recv(_is("INVITE"), wait=5)
        # bob sees who waits: alice.
        assert isinstance(ring, Request) and "alice" in (ring.headers.get("from") or "")
        await bob.answer(ring, 200, to_tag="bob1", body=SDP.format(port=41002).encode(),
                         contact=f"<sip:bob@127.0.0.1:{bob.port}>")
        await bob.recv(_is("ACK"))
        [talking] = pbx.calls.live_calls(app.app_id)
        assert talking["state"] == "talking" and talking["caller"]["username"] == "bob"
        assert talking["callee"]["username"] == "alice"

        # alice hangs up: bob gets BYE, one SUCCESS record with bob in the caller's place.
        bye_from_alice = sip_text(IN_DIALOG.format(
            method="BYE", ruri=f"sip:127.0.0.1:{pbx.sip_port}", cseq=3, port=alice.port,
            to=reinvite.headers.get("from") or "")
            .replace("From: <sip:0901234567@127.0.0.1>;tag=car1",
                     f"From: {reinvite.headers.get('to')}")
            .replace("Call-ID: queue-transfer-1", f"Call-ID: {reinvite.headers.get('call-id')}"))
        await alice.send(bye_from_alice)
        await alice.recv(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")
        bye = await bob.recv(_is("BYE"))
        assert isinstance(bye, Request)
        await bob.answer(bye, 200)
        [cdr] = await _written_cdrs(pbx, app.app_id)
        assert cdr.status_detail == "SUCCESS" and cdr.caller["username"] == "bob"
        assert cdr.callee["username"] == "alice" and cdr.billing_seconds >= 0
        assert {"alice", "bob"} <= set(cdr.sip_users)
    finally:
        await shutdown(pbx)
        transport.close()
        carrier.close()
        alice.close()
        bob.close()
