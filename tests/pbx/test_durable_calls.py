"""Nothing tells a peer a call was answered or ended before that is durable; each step
of the call is one info log line.

A carrier calls a DID and alice answers. The moment the carrier holds its 200 the
call's checkpoint is committed; while the call lasts the checkpoint moves forward;
the moment either side hears that the call ended (the 200 to the carrier's BYE, our
BYE to alice) the call's CDR, or its checkpoint marked ended, is committed. The
database file is read synchronously at those moments, so the server cannot catch up
in between.
"""

from __future__ import annotations

import asyncio
import logging
import select
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.pbx.carrier import DID, SDP, answered, route_did_to_alice
from tests.pbx.peers import UdpPeer, sip_text

from tongdai import logs
from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx, build, shutdown
from tongdai.settings import load_settings
from tongdai.sip.message import Request, Response

INVITE = """INVITE sip:{did}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKdur1;rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: <sip:{did}@127.0.0.1>
Call-ID: durable-1
CSeq: 1 INVITE
Contact: <sip:carrier@127.0.0.1:{port}>
Content-Type: application/sdp

{body}"""

IN_DIALOG = """{method} {ruri} SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKdur{branch};rport
Max-Forwards: 70
From: <sip:0901234567@127.0.0.1>;tag=car1
To: {to}
Call-ID: durable-1
CSeq: {cseq} {method}

"""


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    settings = load_settings(
        data_dir=tmp_path, sip_port=0, rtp_ports="42100-42199", checkpoint_interval=0.2,
    )
    p = await build(settings)
    try:
        yield p
    finally:
        await shutdown(p)


def _db(pbx: Pbx) -> sqlite3.Connection:
    return sqlite3.connect(pbx.settings.data_dir / "tongdai.sqlite3")


def _durable_state(pbx: Pbx) -> tuple[list[tuple[float, float | None, str]], int]:
    """(checkpoints as (checkpoint_at, ended_at, hangup_by), number of CDRs), read now."""
    with _db(pbx) as db:
        cps = db.execute(
            "SELECT checkpoint_at, ended_at, hangup_by FROM call_checkpoints").fetchall()
        (cdrs,) = db.execute("SELECT COUNT(*) FROM cdrs").fetchone()
    return cps, cdrs


def _ended_durably(pbx: Pbx, who: str) -> bool:
    cps, cdrs = _durable_state(pbx)
    return cdrs == 1 or (len(cps) == 1 and cps[0][1] is not None and cps[0][2] == who)


@pytest.mark.parametrize("record", [True, False])
async def test_answer_and_end_are_durable_before_anyone_hears_of_them(
    pbx: Pbx, record: bool, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = await pbx.store.create_app("t")
    await pbx.store.update_app(app.app_id, record_calls=record)
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-secret"))
    carrier, alice = UdpPeer(pbx.sip_port), UdpPeer(pbx.sip_port)
    try:
        await route_did_to_alice(pbx, app.app_id, carrier, alice)

        ok, _ = await answered(carrier, alice, sip_text(INVITE.format(
            did=DID, port=carrier.port, body=SDP.format(port=40000))))
        # The carrier holds the 200: the call is in the database already.
        (cp,), cdrs = _durable_state(pbx)
        assert cdrs == 0 and cp[1] is None
        answered_at = cp[0]
        to, contact = ok.headers.get("to") or "", ok.headers.get("contact") or ""
        ruri = contact.strip("<>")
        await carrier.send(sip_text(IN_DIALOG.format(method="ACK", ruri=ruri, port=carrier.port,
                                                     branch=2, to=to, cseq=1)))
        await _ack_of(alice)

        # While the call lasts its checkpoint moves forward (every 0.2 s here).
        for _ in range(100):
            await asyncio.sleep(0.05)
            (cp,), _ = _durable_state(pbx)
            if cp[0] > answered_at + 0.3:
                break
        assert cp[0] > answered_at + 0.3 and cp[1] is None

        await carrier.send(sip_text(IN_DIALOG.format(method="BYE", ruri=ruri, port=carrier.port,
                                                     branch=3, to=to, cseq=2)))
        # Whichever side hears first that the call ended, its end is already durable.
        first = await _either(carrier, alice)
        assert _ended_durably(pbx, "caller"), first
        bye = await alice.recv(lambda m: isinstance(m, Request) and m.method == "BYE")
        assert isinstance(bye, Request)
        await alice.answer(bye, 200)
        await carrier.recv(lambda m: isinstance(m, Response) and m.cseq[1] == "BYE")

        # Then the CDR, and no checkpoint left.
        for _ in range(100):
            cps, cdrs = _durable_state(pbx)
            if cdrs == 1 and not cps:
                break
            await asyncio.sleep(0.05)
        cdr = (await pbx.store.list_cdrs(app.app_id, 0, time.time() + 60, limit=1,
                                         offset=0))[1][0]
        assert (cdr.status_detail, cdr.hangup_by) == ("SUCCESS", "caller")
        assert not cps
        # One info line each for the start, the answer and the end, without secrets.
        lines = [r for r in caplog.records if r.getMessage().startswith("call.")]
        events = {r.getMessage(): logs.fields_of(r) for r in lines if r.levelno == logging.INFO}
        call_id = events["call.started"]["call_id"]
        assert {k: events["call.started"][k] for k in ("app", "direction", "caller", "callee")} \
            == {"app": app.app_id, "direction": "to_ab", "caller": "0901234567",
                "callee": "alice"}
        assert events["call.answered"]["call_id"] == call_id
        ended = events["call.ended"]
        assert (ended["call_id"], ended["status"], ended["hangup_by"]) == (
            call_id, "SUCCESS", "caller")
        assert ended["duration"] == cdr.duration_seconds and "billing" in ended
        assert [r.getMessage() for r in lines].count("call.ended") == 1
        assert "alice-secret" not in caplog.text
    finally:
        carrier.close()
        alice.close()


async def _ack_of(alice: UdpPeer) -> None:
    await alice.recv(lambda m: isinstance(m, Request) and m.method == "ACK")


async def _either(carrier: UdpPeer, alice: UdpPeer) -> str:
    """Wait for the 200 to the carrier's BYE or our BYE to alice, whichever comes first;
    returns which, without reading the other socket (its message stays queued)."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    socks = {carrier.sock.fileno(): "carrier 200", alice.sock.fileno(): "alice BYE"}
    for fd in socks:
        loop.add_reader(fd, readable.set)
    try:
        await asyncio.wait_for(readable.wait(), 5)
    finally:
        for fd in socks:
            loop.remove_reader(fd)
    return ", ".join(name for fd, name in socks.items() if _pending(fd))


def _pending(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])
