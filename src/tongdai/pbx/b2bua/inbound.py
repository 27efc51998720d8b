"""Calls that arrive as an INVITE: from a device (internal or outbound) or from a
carrier to a DID. The driver has already authenticated and routed the INVITE
(``NewCall``); here the caller's leg is born and the callee's side dialled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending, flow_call, outbound, session_timer
from tongdai.pbx.b2bua.actions import Respond, StopMedia
from tongdai.pbx.b2bua.events import NewCall, Refuse
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import LegState
from tongdai.pbx.cdr import Outcome
from tongdai.sip.message import make_response
from tongdai.sip.uri import NameAddr

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua


def start(b: B2bua, ev: NewCall) -> None:
    if session_timer.too_small(b, ev.request):
        # RFC 4028 §8.1: an interval below our Min-SE is refused with ours, and the
        # caller asks again. A negotiation step, not a call: no record, media freed.
        resp = make_response(ev.request, 422, to_tag=b.ids.tag())
        session_timer.reject_422(b, resp)
        b.emit(Respond(txn=ev.txn, response=resp))
        if ev.media is not None:
            b.emit(StopMedia(call_id=ev.plan.call_id))
        return
    call = Call.of(ev.plan, "basic", b.now, ev.media)
    b.add(call)
    a = Leg(name="a", peer=ev.peer, uas=True, state=LegState.INVITED, invite=ev.request,
            txn=ev.txn, local_tag=b.ids.tag())
    call.a = a
    b.server[ev.txn] = (call, a)
    target = ev.target
    if ev.flow is not None and call.media is not None:
        flow_call.start(b, call, a, ev.request, ev.flow)  # whatever the DID's device
        return
    if isinstance(target, Refuse):
        outbound.respond_a(b, a, target.status, target.reason)
        outcome = Outcome.NO_ANSWER if target.status == 480 else Outcome.FAILED
        # An offline device never rang: the seed counts that as not picked up (IVR)
        # only for inbound calls; an outgoing call to an offline device is ERROR.
        if call.direction == "from_ab" and target.status == 480:
            outcome = Outcome.FAILED
        ending.finish(b, call, outcome, target.status, "system")
        return
    if call.media is None:
        b.log("call.no_media", level=40, call_id=call.call_id, app=call.app_id)
        outbound.respond_a(b, a, 503)
        ending.finish(b, call, Outcome.FAILED, 503, "system")
        return
    body = b""
    if anchor.remote_of(ev.request.body) is not None:
        b.media_to(call, a, ev.request.body)
        body = anchor.rewrite(ev.request.body, *call.media.b)
    outbound.dial(b, call, target, body, display=_display(ev.request.headers.get("from")))


def _display(from_: str | None) -> str:
    try:
        return NameAddr.parse(from_ or "").display
    except Exception:
        return ""
