"""Click-to-call (RFC 3725 flow I): tongdai rings the agent with its own offer; once the
agent answers, it looks the number up again and calls it with the agent's codec, then
bridges the two. In this kind of call leg a is the agent, and both legs are ours."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending, outbound
from tongdai.pbx.b2bua.actions import Lookup
from tongdai.pbx.b2bua.events import ClickToCall, Refuse, Target
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallInput, CallState, LegState
from tongdai.pbx.cdr import Outcome

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua


def start(b: B2bua, ev: ClickToCall) -> None:
    call = Call.of(ev.plan, "click_to_call", b.now, ev.media)
    call.number = ev.number
    call.device = ev.device
    b.add(call)
    if call.media is None:
        b.log("call.no_media", level=40, call_id=call.call_id, app=call.app_id)
        ending.finish(b, call, Outcome.FAILED, 503, "system")
        return
    call.fire(CallInput.DIAL_A)
    a = Leg(name="a", peer=ev.agent.peer, uas=False, state=LegState.CALLING,
            local_tag=b.ids.tag())
    call.a = a
    agent = ev.plan.devices[0]
    req = b.msg.invite(ruri=ev.agent.contact, to_uri=f"sip:{agent}@{b.msg.domain}",
                       from_user=ev.number, from_display=ev.number,
                       body=anchor.offer(*call.media.a), leg=a,
                       sip_call_id=b.ids.sip_call_id(), route=ev.agent.route)
    b.send_invite(call, a, req)
    b.set_timer(call, "ring", b.limits.ring_timeout)


def agent_answered(b: B2bua, call: Call) -> None:
    """The agent picked up: find where the number goes now (bindings change)."""
    call.fire(CallInput.AGENT_ANSWERED)
    b.cancel_timer(call, "ring")
    b.emit(Lookup(call_id=call.call_id, app_id=call.app_id, number=call.number,
                  device=call.device))


def on_routed(b: B2bua, call: Call, target: Target) -> None:
    a = call.a
    if call.state is not CallState.ROUTING_B or a is None or call.media is None:
        return
    if isinstance(target, Refuse):
        if target.outside:
            call.klass = "trunking"
        b.bye(a)
        ending.finish(b, call, Outcome.FAILED, target.status, "system")
        return
    # Offer the number only the codec the agent chose, so no transcoding is needed.
    codec = anchor.chosen_codec(a.remote_sdp)
    body = anchor.offer(*call.media.b, codecs=(codec,) if codec else ("0", "8"))
    outbound.dial(b, call, target, body)
