"""A server that stops while a recorded call is up ends the call, and its CDR (written
once the recording is closed) is stored before the store closes: no checkpoint is
left for the next start to recover."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.pbx.carrier import DID, SDP, answered, is_invite_200, route_did_to_alice
from tests.pbx.peers import UdpPeer, sip_text

from tongdai.flows.store import QueueRec
from tongdai.pbx.credentials import digest_keys
from tongdai.server import build, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Request, Response

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKstop1;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: <sip:{did}@127.0.0.1>
Call-ID: stopping-1
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port}>
Content-Type: application/sdp

{body}"""
ACK = """ACK {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKstop2;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: stopping-1
CSeq: 1 ACK

"""


async def test_stopping_the_server_ends_a_recorded_call_with_its_whole_cdr(
    tmp_path: Path,
) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42200-42299"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    stopped = False
    try:
        app = await pbx.store.create_app("t")
        await pbx.store.update_app(app.app_id, record_calls=True)
        await pbx.store.add_device(app.app_id, "alice",
                                   digest_keys("alice", pbx.settings.domain, "alice-secret"))
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        ok, _ = await answered(carrier, alice, sip_text(INVITE.format(
            did=DID, port=carrier.port, body=SDP.format(port=40000))))
        ruri = (ok.headers.get("contact") or "").strip("<>")
        await carrier.send(sip_text(ACK.format(ruri=ruri, port=carrier.port,
                                               to=ok.headers.get("to") or "")))

        await shutdown(pbx)
        stopped = True
        with sqlite3.connect(tmp_path / "tongdai.sqlite3") as db:
            cdrs = db.execute("SELECT hangup_by, status_detail FROM cdrs").fetchall()
            (cps,) = db.execute("SELECT COUNT(*) FROM call_checkpoints").fetchone()
        [(hangup_by, status)] = cdrs
        assert (hangup_by, status, cps) == ("system", "SUCCESS", 0)
        # Both sides were told, once the end was durable.
        assert await carrier.recv(lambda m: isinstance(m, Request) and m.method == "BYE")
    finally:
        if not stopped:
            await shutdown(pbx)
        carrier.close()
        alice.close()


async def test_stopping_the_server_while_the_caller_waits_in_a_queue_is_ivr(
    tmp_path: Path,
) -> None:
    pbx = await build(load_settings(data_dir=tmp_path, sip_port=0, rtp_ports="42300-42399"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    stopped = False
    try:
        app = await pbx.store.create_app("t")
        await pbx.store.add_device(app.app_id, "alice",
                                   digest_keys("alice", pbx.settings.domain, "alice-secret"))
        await route_did_to_alice(pbx, app.app_id, carrier, alice)
        await pbx.store.add_queue(QueueRec(app_id=app.app_id, name="sales", agents=("alice",)))
        await pbx.store.pause_agent(app.app_id, "alice", True)  # the caller waits
        await pbx.store.set_flow(app.app_id, DID, "queue: sales")
        await pbx.directory.check()
        await carrier.send(sip_text(INVITE.format(did=DID, port=carrier.port,
                                                  body=SDP.format(port=40000))))
        ok = await carrier.recv(is_invite_200)  # tongdai answers for the flow
        assert isinstance(ok, Response)
        ruri = (ok.headers.get("contact") or "").strip("<>")
        await carrier.send(sip_text(ACK.format(ruri=ruri, port=carrier.port,
                                               to=ok.headers.get("to") or "")))
        flows = pbx.calls.flows
        assert flows is not None
        for _ in range(200):  # the runner puts the caller in the queue
            if any(flows.acd.length(q) for q in await pbx.store.list_queues(app.app_id)):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the caller never joined the queue")

        await shutdown(pbx)
        stopped = True
        with sqlite3.connect(tmp_path / "tongdai.sqlite3") as db:
            cdrs = db.execute("SELECT hangup_by, status_detail, billing_seconds "
                              "FROM cdrs").fetchall()
        assert cdrs == [("system", "IVR", 0)]
        assert await carrier.recv(lambda m: isinstance(m, Request) and m.method == "BYE")
        assert not [m for m in alice.inbox if isinstance(m, Request) and m.method == "INVITE"]
    finally:
        if not stopped:
            await shutdown(pbx)
        carrier.close()
        alice.close()
