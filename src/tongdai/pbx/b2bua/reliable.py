"""RFC 3262 towards the caller: the callee's ringing reaches a caller that supports
100rel as a reliable provisional (Require: 100rel, RSeq), retransmitted until the
caller PRACKs it; the PRACK gets its 200, one that matches nothing gets 481.

(The callee's side, PRACKing a carrier's reliable provisionals, is in ``outbound``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tongdai.pbx.b2bua.actions import Respond
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import LegState
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.transaction import TIMEOUT_T1_MULTIPLE

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

TAG = "100rel"
T1 = 0.5  # RFC 3262 §3: retransmitted at T1, doubling, like a 2xx (RFC 3261 §13.3.1.4)
T2 = 4.0
TIMER = "rel1xx"


def wanted(req: Request) -> bool:
    """The caller's INVITE supports (or requires) reliable provisionals."""
    return TAG in (t.lower() for t in req.headers.values("supported")
                   + req.headers.values("require"))


def send(b: B2bua, call: Call, a: Leg, resp: Response) -> bool:
    """Send ``resp`` (a 18x on leg a) reliably if the caller wants it; True if sent.

    RFC 3262 §3: one reliable provisional at a time; while one waits for its PRACK,
    the next goes unreliably.
    """
    if a.invite is None or a.txn is None or not wanted(a.invite):
        return False
    if a.unacked is not None:
        return False
    a.rseq += 1
    resp.headers.add("require", TAG)
    resp.headers.add("rseq", a.rseq)
    if a.dialog is None:  # the early dialog the caller's PRACK comes in (RFC 3261 §12.1.1)
        b.track(call, a, Dialog.from_uas(a.invite, resp, local_contact=b.msg.contact(a.peer)))
    a.unacked = resp
    a.rel_sent = b.now
    a.rel_interval = T1
    b.emit(Respond(txn=a.txn, response=resp))
    b.set_timer(call, TIMER, T1)
    return True


def retransmit(b: B2bua, call: Call) -> None:
    a = call.a
    if a is None or a.unacked is None or a.txn is None or a.state is not LegState.INVITED:
        return
    if b.now - a.rel_sent >= TIMEOUT_T1_MULTIPLE * T1:
        # §3: never PRACKed within 64·T1; the callee's ringing simply stops being
        # repeated (the call itself goes on: its 200 still comes).
        a.unacked = None
        return
    b.emit(Respond(txn=a.txn, response=a.unacked))
    a.rel_interval = min(a.rel_interval * 2, T2)
    b.set_timer(call, TIMER, a.rel_interval)


def on_prack(b: B2bua, call: Call, leg: Leg, req: Request, txn: str) -> None:
    """RFC 3262 §3: a PRACK whose RAck matches the reliable provisional in flight
    stops its retransmission and gets 200; any other gets 481."""
    sent = leg.unacked
    rack = (req.headers.get("rack") or "").split()
    if sent is not None and len(rack) == 3 and rack[0] == str(leg.rseq) \
            and rack[1] == str(sent.cseq[0]) and rack[2].upper() == sent.cseq[1]:
        leg.unacked = None
        b.cancel_timer(call, TIMER)
        b.emit(Respond(txn=txn, response=make_response(req, 200)))
        return
    b.emit(Respond(txn=txn, response=make_response(req, 481)))
