"""Calls to a DID with a flow: tongdai answers the caller itself, then rings whom the
flow says, and bridges the first who answers.

The flow itself (prompts, menus, waiting for digits, queues) runs in an async runner
beside the driver (``tongdai.pbx.flow.runner``), because it waits on audio and the
caller's digits; it tells this core what to do with ``FlowDial``/``FlowNote``/
``FlowHangup`` and hears back through ``FlowDialled``. Here, kept pure:

- the caller's INVITE is answered with our SDP (its first G.711 codec and its
  telephone-event payload type, ``pbx/flow/sdp.py``): the call is ``IN_FLOW``; an
  INVITE without SDP gets our offer, and the flow starts at the ACK's answer;
- a ``FlowDial`` rings every dialee at once, offering that codec alone (forks, first
  answer wins), with a ring timer of its own; nobody answering takes the call back to
  ``IN_FLOW``; an answer makes it ``ANSWERED``: billing, the CDR's callee and the
  recording start there, not at tongdai's answer;
- INFO from the caller is handed to the runner (DTMF); a caller who hangs up while
  leaving a voicemail lets the recording finish first.

CDR: answered by an agent is SUCCESS with that agent as callee; a caller who hangs up
in a menu, queue or ring group, and a flow that ends without an answer (voicemail,
hangup node), are IVR, the voicemail's file in ``recording``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tongdai.pbx.b2bua import ending
from tongdai.pbx.b2bua.actions import Publish, Respond, StartRecording
from tongdai.pbx.b2bua.events import Party
from tongdai.pbx.b2bua.flow_events import (
    Dialee,
    FlowCommand,
    FlowDial,
    FlowDialled,
    FlowHangup,
    FlowHold,
    FlowInfo,
    FlowNote,
    FlowOver,
    FlowStop,
    RunFlow,
    StartFlow,
)
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallInput, CallState, LegInput, LegState
from tongdai.pbx.cdr import Outcome
from tongdai.pbx.flow import sdp
from tongdai.pbx.protocol import Side
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.sip.sdp import SdpError, SessionDescription

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

RING_TIMER = "flow_ring"
VOICEMAIL_TIMER = "flow_voicemail"
# How long a caller's hang-up waits for its voicemail's file before the call ends anyway.
VOICEMAIL_WAIT = 10.0


@dataclass(eq=False)
class FlowState:
    media: sdp.Media
    run: RunFlow | None = None  # the flow (None: a transfer's one-node queue)
    dialees: dict[int, Dialee] = field(default_factory=dict)  # id(leg) → whom it rings
    rung: list[str] = field(default_factory=list)  # every device rung, in order
    agent: str | None = None  # who answered
    recording_voicemail: bool = False
    caller_gone: bool = False
    # The record's side an agent who answers takes: the callee, unless the call came
    # from a transfer to a queue in which the caller left and the callee waits.
    agent_side: Side = "callee"
    awaiting_answer: bool = False  # a late offer: the caller's answer comes in the ACK
    # A call a transfer queued: when its first person answered. Billing runs from
    # there once an agent answers, as through a transfer to a device (docs/cdr.md).
    first_answer: float | None = None


def waiting(call: Call) -> Party:
    """The party in the flow (leg a): the caller, or a callee a transfer queued."""
    st = call.flow
    return call.callee if st is not None and st.agent_side == "caller" else call.caller


def start(b: B2bua, call: Call, a: Leg, req: Request, run: RunFlow) -> None:
    """Answer the caller with our own SDP and start its flow (a late offer: once its
    ACK brings the answer)."""
    late = not req.body
    media = sdp.LATE if late else sdp.choose(req.body)
    assert call.media is not None and a.txn is not None
    if media is None:
        # RFC 3264 §6: nothing we can speak.
        b.emit(Respond(txn=a.txn, response=b.msg.response(a, 488, "Not Acceptable Here")))
        a.fire(LegInput.FAIL)
        ending.finish(b, call, Outcome.FAILED, 488, "system")
        return
    call.flow = FlowState(media=media, run=run, awaiting_answer=late)
    b.log_start(call)
    if late:
        # RFC 3261 §13.2.1: an INVITE without an offer gets ours in the 2xx; the
        # caller's answer comes in the ACK (``on_ack``).
        body = sdp.offer(*call.media.a)
    else:
        b.media_to(call, a, req.body)
        body = sdp.describe(*call.media.a, media)
    ok = b.msg.response(a, 200, body=body)
    a.local_sdp = body
    a.remote_sdp = req.body
    b.track(call, a, Dialog.from_uas(req, ok, local_contact=b.msg.contact(a.peer)))
    a.fire(LegInput.ANSWER)
    call.fire(CallInput.FLOW_ANSWERED)
    b.emit(Respond(txn=a.txn, response=ok))
    call.events_sent.add("ringing")  # each agent hears of its own ringing instead
    if not late:
        _run(b, call, call.flow)
    b.set_timer(call, "max_duration", b.limits.max_call_duration)


def _run(b: B2bua, call: Call, st: FlowState) -> None:
    assert st.run is not None
    b.emit(StartFlow(call_id=call.call_id, app_id=call.app_id,
                     caller=str(call.caller.get("number", "")), flow=st.run.flow,
                     media=st.media))


def on_ack(b: B2bua, call: Call, leg: Leg, req: Request) -> bool:
    """The ACK of a late offer's 200 brings the caller's answer: the flow starts in its
    codec. An answer we cannot speak (or none) ends the call (RFC 3261 §13.2.1)."""
    st = call.flow
    if st is None or not st.awaiting_answer or leg is not call.a or call.finished:
        return False
    st.awaiting_answer = False
    media = sdp.choose(req.body)
    if media is None:
        b.log("call.bad_answer", call_id=call.call_id, app=call.app_id)
        ending.hangup(b, call, None, "system")
        return True
    st.media = media
    leg.remote_sdp = req.body
    assert call.media is not None
    leg.local_sdp = sdp.describe(*call.media.a, media)  # what later answers repeat
    b.media_to(call, leg, req.body)
    _run(b, call, st)
    return True


def on_command(b: B2bua, cmd: FlowCommand) -> None:
    call = b.calls.get(cmd.call_id)
    if call is None or call.flow is None:
        return
    match cmd:
        case FlowDial():
            dial(b, call, call.flow, cmd)
        case FlowNote():
            note(b, call, cmd)
        case FlowHangup():
            hangup(b, call, call.flow)


def dial(b: B2bua, call: Call, st: FlowState, cmd: FlowDial) -> None:
    if call.state is not CallState.IN_FLOW or call.media is None:
        b.emit(FlowDialled(call_id=call.call_id, answered=None))
        return
    body = sdp.describe(*call.media.b, st.media)
    caller = str(waiting(call).get("number", "anonymous"))
    forks: list[tuple[Leg, Request]] = []
    for d in cmd.dialees:
        if d.trunk is not None:
            t = d.trunk.trunk
            leg = Leg(name="b", peer=Peer(t.transport, t.host, t.port), uas=False,
                      state=LegState.CALLING, local_tag=b.ids.tag(), trunk=t)
            ruri = f"sip:{d.trunk.number}@{t.host}:{t.port}"
            forks.append((leg, b.msg.invite(
                ruri=ruri, to_uri=ruri, from_user=call.caller_id or caller, from_display="",
                body=body, leg=leg, sip_call_id=b.ids.sip_call_id())))
            st.dialees[id(leg)] = d
            continue
        for binding in d.bindings:
            leg = Leg(name="b", peer=binding.peer, uas=False, state=LegState.CALLING,
                      local_tag=b.ids.tag())
            forks.append((leg, b.msg.invite(
                ruri=binding.contact, to_uri=f"sip:{d.name}@{b.msg.domain}", from_user=caller,
                from_display="", body=body, leg=leg, sip_call_id=b.ids.sip_call_id(),
                route=binding.route)))
            st.dialees[id(leg)] = d
    if not forks:
        b.emit(FlowDialled(call_id=call.call_id, answered=None))
        return
    call.fire(CallInput.DIAL_B)
    call.forks = [leg for leg, _ in forks]
    call.b = call.forks[0]
    for leg, req in forks:
        b.send_invite(call, leg, req)
    for d in cmd.dialees:
        if d.trunk is None:
            st.rung.append(d.name)
            # Each agent's own websocket hears that it rings (docs/flows.md).
            b.emit(Publish(kind="call.ringing", app_id=call.app_id, sip_users=(d.name,),
                           ts=b.now, data={**call.event_data(), "callee": d.party}))
    b.set_timer(call, RING_TIMER, cmd.timeout)


def fork_failed(b: B2bua, call: Call) -> None:
    """A fork failed (busy, declined, unreachable): when it was the last, nobody answered."""
    if call.state is CallState.RINGING_B and all(f.over for f in call.forks):
        _nobody(b, call)


def ring_timeout(b: B2bua, call: Call) -> None:
    if call.state is not CallState.RINGING_B:
        return
    for leg in call.forks:
        if not leg.over:
            b.cancel_leg(leg)
    _nobody(b, call)


def _nobody(b: B2bua, call: Call) -> None:
    call.fire(CallInput.NO_AGENT)
    b.cancel_timer(call, RING_TIMER)
    b.emit(FlowDialled(call_id=call.call_id, answered=None))


def agent_answered(b: B2bua, call: Call, leg: Leg, resp: Response) -> None:
    """One fork answered (the others are being cancelled): bridge it to the caller."""
    st = call.flow
    assert st is not None
    d = st.dialees.get(id(leg))
    call.fire(CallInput.B_ANSWERED)
    b.cancel_timer(call, RING_TIMER)
    name = d.name if d is not None else ""
    if d is not None:
        if st.agent_side == "caller":
            call.caller = d.party
        else:
            call.callee = d.party
        st.agent = name if d.trunk is None else None
        # A device waiting in the flow (queued by a transfer) stays in the call.
        mine = tuple(n for n in call.devices if n == waiting(call).get("username"))
        call.devices = (*mine, name) if d.trunk is None else mine
    call.answered_at = st.first_answer if st.first_answer is not None else b.now
    b.emit(FlowDialled(call_id=call.call_id, answered=name))  # the relay bridges now
    b.emit(StartRecording(call_id=call.call_id))  # the agent conversation only
    b.log("call.answered", call_id=call.call_id, app=call.app_id, agent=name,
          setup=round(b.now - call.started_at, 3))
    ending.make_answer_durable(b, call)


def note(b: B2bua, call: Call, cmd: FlowNote) -> None:
    st = call.flow
    assert st is not None
    if cmd.kind == "recording":
        st.recording_voicemail = True  # a hang-up now waits for the file
        return
    if cmd.kind == "voicemail":
        st.recording_voicemail = False
        call.voicemail = cmd.recording
        if not cmd.recording:
            return
        box = str(cmd.data.get("box") or "")
        if box and box not in call.devices:
            call.devices = (*call.devices, box)  # the box's owner sees it in its histories
    b.publish(call, f"call.{cmd.kind}", {**call.event_data(), **cmd.data})


def hangup(b: B2bua, call: Call, st: FlowState) -> None:
    """The flow ended without an answer (or after its voicemail): IVR."""
    b.cancel_timer(call, VOICEMAIL_TIMER)
    if call.finished:
        return
    if call.answered_at is not None:
        ending.hangup(b, call, None, "system")
        return
    for leg in call.legs():
        if leg.answered:
            b.when_settled(call, functools.partial(b.bye, leg))
        elif not leg.uas and not leg.over:
            b.cancel_leg(leg)
    ending.finish(b, call, Outcome.NO_ANSWER, 200, "caller" if st.caller_gone else "system")


def caller_left(b: B2bua, call: Call, leg: Leg | None) -> bool:
    """The caller hung up: True when the call waits for its voicemail's file first."""
    st = call.flow
    if st is None or leg is not call.a or not st.recording_voicemail or call.finished:
        return False
    st.caller_gone = True
    b.emit(FlowStop(call_id=call.call_id))
    b.set_timer(call, VOICEMAIL_TIMER, VOICEMAIL_WAIT)
    return True


def finishing(b: B2bua, call: Call) -> None:
    """The call ends: every agent rung hears ``call.ended``; the runner stops."""
    st = call.flow
    if st is None:
        return
    others = tuple(n for n in dict.fromkeys(st.rung) if n not in call.devices)
    call.devices = (*call.devices, *others)
    b.emit(FlowOver(call_id=call.call_id, agent=st.agent))


def on_request(b: B2bua, call: Call, leg: Leg, req: Request, txn: str) -> bool:
    """A request from the caller while tongdai holds its leg (no agent to relay it to):
    INFO is a digit for the runner; a re-INVITE or UPDATE (a refresh, a new address)
    gets our SDP again."""
    if call.flow is None or leg is not call.a or call.state is CallState.ANSWERED:
        return False
    if req.method == "INFO":
        b.emit(Respond(txn=txn, response=make_response(req, 200)))
        b.emit(FlowInfo(call_id=call.call_id,
                        content_type=req.headers.get("content-type") or "", body=req.body))
        return True
    if req.body:
        b.media_to(call, leg, req.body)
        _answer_direction(b, call, leg, req.body)
    body = leg.local_sdp if req.method == "INVITE" or req.body else b""
    ok = make_response(req, 200, body=body,
                       content_type="application/sdp" if body else None)
    ok.headers.add("contact", b.msg.contact(leg.peer))
    b.emit(Respond(txn=txn, response=ok))
    return True


# RFC 3264 §6.1: the answer's direction for each direction offered.
_ANSWER = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
           "inactive": "inactive"}


def _answer_direction(b: B2bua, call: Call, leg: Leg, offer: bytes) -> None:
    """A re-offer from the caller: our SDP answers its direction (a hold, RFC 3264
    §8.4, is answered recvonly or inactive), and the runner stops sending while the
    caller asked for nothing (sendonly, inactive) and resumes after."""
    try:
        theirs = SessionDescription.parse(offer)
        ours = SessionDescription.parse(leg.local_sdp)
    except SdpError:
        return
    audio = next((m for m in theirs.media if m.kind == "audio"), None)
    if audio is None or not ours.media:
        return
    want = _ANSWER.get(audio.direction, "sendrecv")
    if ours.media[0].direction != want:
        ours.media[0].set_direction(want)
        ours.bump_version()  # a changed answer (RFC 3264 §8)
        leg.local_sdp = ours.serialize()
    b.emit(FlowHold(call_id=call.call_id, held=want in ("recvonly", "inactive")))
