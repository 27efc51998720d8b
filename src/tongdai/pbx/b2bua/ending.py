"""How a call ends, and the order in which its end is told.

A call's end is made durable first (its CDR, or for a recorded call its checkpoint
marked ended), then the peers are told (the 200 to their BYE, our BYEs), then the
media closes, the CDR gets its recording, and ``call.ended`` is published — so no
crash, at any point, loses a call a peer or an integrator saw end.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from tongdai.pbx.b2bua import flow_call
from tongdai.pbx.b2bua.actions import Checkpoint, Respond, StopMedia, WriteCdr
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallInput, CallState, LegInput, LegState
from tongdai.pbx.cdr import Outcome

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua


def on_cancel(b: B2bua, txn: str) -> None:
    """The caller gave up while it rang (RFC 3261 §9.2: its INVITE gets 487)."""
    found = b.server.get(txn)
    if found is None:
        return
    call, a = found
    if a.state is not LegState.INVITED or call.finished:
        return
    a.fire(LegInput.FAIL)
    b.emit(Respond(txn=txn, response=b.msg.response(a, 487)))
    hangup(b, call, a, "caller")


def hangup(b: B2bua, call: Call, from_leg: Leg | None, who: str) -> None:
    """``from_leg`` hung up (None: we end the call): end every other leg."""
    if call.finished or flow_call.caller_left(b, call, from_leg):
        return
    if from_leg is not None and from_leg.answered:
        from_leg.fire(LegInput.BYE)
    for leg in call.legs():
        if leg is from_leg or leg.over:
            continue
        if leg.answered:
            # Our BYE tells that side the call is over: once that is durable.
            b.when_settled(call, functools.partial(b.bye, leg))
        elif not leg.uas:
            b.cancel_leg(leg)
        elif leg.txn is not None:
            leg.fire(LegInput.FAIL)
            b.emit(Respond(txn=leg.txn, response=b.msg.response(leg, 487)))
    if call.answered_at is not None:
        finish(b, call, Outcome.ANSWERED, 200, who)
    elif call.flow is not None:
        # The caller was in the flow (menu, queue, agents ringing — also one a transfer
        # put in a queue, whatever the call's direction): IVR, like a flow that ends
        # without an answer, also when the server stops or a limit ends it.
        finish(b, call, Outcome.NO_ANSWER, 487 if who in ("caller", "api") else 200, who)
    elif who in ("caller", "api"):
        # Hung up through the Open API while it rang: given up, as by the caller.
        finish(b, call, Outcome.CALLER_GAVE_UP, 487, who)
    else:
        finish(b, call, Outcome.FAILED, 500, who)


def finish(b: B2bua, call: Call, outcome: Outcome, code: int, who: str) -> None:
    """The call is over: record how, and start making that durable."""
    if call.finished:
        return
    call.fire(CallInput.FINISH)
    flow_call.finishing(b, call)
    call.outcome = outcome
    call.sip_code = code
    call.hangup_by = who
    call.ended_at = b.now
    for name in list(call.timers):
        b.cancel_timer(call, name)
    b.log_start(call)
    cdr = call.to_cdr()
    b.log("call.ended", call_id=call.call_id, app=call.app_id, direction=call.direction,
          caller=call.caller.get("number"), callee=call.callee.get("number"),
          status=cdr.status_detail, sip_code=code, hangup_by=who,
          duration=cdr.duration_seconds, billing=cdr.billing_seconds)
    # Finishing a recording can take seconds under load: until its file is known, the
    # checkpoint marked ended is what a crash would leave.
    if call.recording_pending:
        b.emit(Checkpoint(checkpoint=call.checkpoint(b.now), purpose="end"))
    else:
        b.emit(WriteCdr(cdr=cdr, purpose="end"))
    b.set_timer(call, "end_durable", b.limits.durable_wait)


def make_answer_durable(b: B2bua, call: Call) -> None:
    b.emit(Checkpoint(checkpoint=call.checkpoint(b.now), purpose="answer"))
    b.set_timer(call, "answer_durable", b.limits.durable_wait)


def release_answer(b: B2bua, call: Call) -> None:
    """The answer is durable (or we waited long enough): tell the caller and integrators."""
    if call.answer_released:
        return
    call.answer_released = True
    b.cancel_timer(call, "answer_durable")
    send_answer(call)
    b.publish(call, "call.answered")


def send_answer(call: Call) -> None:
    """Leg a's 200, once: before anything that ends the call reaches leg a."""
    answer, call.pending_answer = call.pending_answer, None
    if answer is not None:
        answer()


def on_stored(b: B2bua, call: Call, purpose: str) -> None:
    match purpose:
        case "answer":
            release_answer(b, call)
        case "end":
            # A recorded call's first write was its checkpoint; its CDR comes later.
            call.cdr_stored = not call.recording_pending
            settle(b, call)
            _maybe_done(b, call)
        case "cdr":
            call.cdr_stored = True
            _maybe_done(b, call)
        case _:
            pass


def settle(b: B2bua, call: Call) -> None:
    """The end is durable (or we waited ``durable_wait``): tell the peers, close media."""
    if call.state is not CallState.ENDED:
        return
    call.fire(CallInput.DURABLE)
    b.cancel_timer(call, "end_durable")
    send_answer(call)  # a 200 still held back goes before any BYE
    steps, call.on_settled = call.on_settled, []
    for step in steps:
        step()
    b.emit(StopMedia(call_id=call.call_id))


def on_media_stopped(b: B2bua, call: Call, recording: str) -> None:
    call.media_closed = True
    call.recording = recording
    if call.recording_pending:
        b.emit(WriteCdr(cdr=call.to_cdr(), purpose="cdr"))
    else:
        _maybe_done(b, call)


def _maybe_done(b: B2bua, call: Call) -> None:
    """The CDR is stored and media closed: only now may integrators hear the call ended."""
    if call.state is not CallState.SETTLED or not (call.cdr_stored and call.media_closed):
        return
    call.fire(CallInput.CLOSED)
    cdr = call.to_cdr()
    b.publish(call, "call.ended", {
        **cdr.to_api(), "call_id": call.call_id, "sip_code": call.sip_code,
        "hangup_by": call.hangup_by, "started_at": call.started_at,
        "answered_at": call.answered_at, "ended_at": call.ended_at,
    })
    b.retire(call)


def on_unacked(b: B2bua, txn: str) -> None:
    """RFC 3261 §13.3.1.4: no ACK for our 2xx — the session never came up."""
    found = b.server.get(txn)
    if found is not None and found[1].answered and not found[0].finished:
        hangup(b, found[0], None, "system")


def on_silence(b: B2bua, call: Call, seconds: float) -> None:
    """End an answered call whose media stopped (a side that vanished without BYE), or
    a call in its flow whose caller did."""
    if call.state is CallState.IN_FLOW and call.flow is not None:
        if seconds > b.limits.media_timeout:
            b.log("call.media_timeout", level=logging.INFO, call_id=call.call_id,
                  silent=round(seconds, 1))
            flow_call.hangup(b, call, call.flow)
        return
    if call.state is not CallState.ANSWERED or call.on_hold:
        return  # a held call legitimately carries no RTP (RFC 3264 §8.4)
    if seconds > b.limits.media_timeout:
        b.log("call.media_timeout", level=logging.INFO, call_id=call.call_id,
              silent=round(seconds, 1))
        hangup(b, call, None, "system")
