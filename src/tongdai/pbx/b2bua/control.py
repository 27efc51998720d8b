"""Call control from outside the call (the Open API): hang up, hold and resume a
party, pause and resume the recording — and the live calls as integrators see them.

A command names the call and is checked first (``refusal``: the call must be the
app's and live, answered for hold, recorded for the recording commands); what it
does is SIP and media like any other move of the call. Hold re-INVITEs the party
with ``a=inactive`` (neither direction: the held party neither hears the other nor
is heard), resume with ``a=sendrecv``; the other party's leg is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending
from tongdai.pbx.b2bua.actions import PauseRecording, ResumeRecording
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallState
from tongdai.pbx.protocol import ControlOp, Side
from tongdai.sip.sdp import SdpError, SessionDescription

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

Op = ControlOp

# Why a command is refused (the Open API's error codes).
NOT_FOUND = "call_not_found"
NOT_ANSWERED = "call_not_answered"
NOT_RECORDING = "not_recording"
TRANSFERRING = "transfer_in_progress"


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """A command on a live call; ``party`` (hold, resume): whom, by default the party
    that is not the app's own device (the callee of an outgoing call, the caller of
    an incoming one)."""

    call_id: str
    op: Op
    party: Side | None = None
    by: str = "api"


def live(b: B2bua, app_id: str, call_id: str) -> Call | None:
    """The app's call ``call_id`` while it lasts (another app's call is unknown)."""
    call = b.calls.get(call_id)
    if call is None or call.app_id != app_id or call.finished:
        return None
    return call


def refusal(b: B2bua, app_id: str, call_id: str, op: Op | Literal["transfer"]) -> str | None:
    """Why ``op`` cannot be done on the call now (an error code), or None."""
    call = live(b, app_id, call_id)
    if call is None:
        return NOT_FOUND
    if op == "hangup":
        return None
    if op in ("pause_recording", "resume_recording"):
        return None if call.media is not None and call.media.record else NOT_RECORDING
    if call.state is not CallState.ANSWERED:
        return NOT_ANSWERED
    if call.transfer is not None:
        return TRANSFERRING
    return None


def handle(b: B2bua, cmd: Control) -> None:
    call = b.calls.get(cmd.call_id)
    if call is None or call.finished:
        return
    match cmd.op:
        case "hangup":
            b.log("call.control", call_id=call.call_id, app=call.app_id, op=cmd.op,
                  by=cmd.by)
            ending.hangup(b, call, None, cmd.by)
        case "hold" | "resume":
            leg = party_leg(call, cmd.party)
            if leg is not None and call.state is CallState.ANSWERED and call.transfer is None:
                _hold(b, call, leg, cmd.op == "hold", cmd.by)
        case "pause_recording" | "resume_recording":
            _recording(b, call, cmd.op == "pause_recording", cmd.by)


def party_leg(call: Call, party: Side | None) -> Leg | None:
    if party is None:
        party = "caller" if call.direction == "to_ab" else "callee"
    return call.a if party == "caller" else call.b


def _hold(b: B2bua, call: Call, leg: Leg, hold: bool, by: str) -> None:
    if not leg.answered or leg.dialog is None:
        return
    if (call.held == leg.name) == hold:
        return  # already so
    direction = "inactive" if hold else "sendrecv"
    body = with_direction(leg.local_sdp or _fresh(call, leg), direction)
    leg.local_sdp = body  # so a session refresh re-offers the same state
    call.held = leg.name if hold else None
    call.on_hold = hold  # no RTP now is expected, not a dead call (media timeout)
    req = leg.dialog.create_request("INVITE", body=body, content_type="application/sdp")
    b.send_refresh(call, leg, req)
    b.log("call.control", call_id=call.call_id, app=call.app_id,
          op="hold" if hold else "resume", leg=leg.name, by=by)
    b.publish(call, "call.held" if hold else "call.resumed",
              {**call.event_data(), "party": "caller" if leg.name == "a" else "callee",
               "by": by})


def with_direction(body: bytes, direction: str) -> bytes:
    """Our last offer to a leg, re-offered in ``direction`` (RFC 3264 §8.4)."""
    try:
        sdp = SessionDescription.parse(body)
    except SdpError:
        return body
    sdp.set_direction(direction)
    sdp.bump_version()
    return sdp.serialize()


def _fresh(call: Call, leg: Leg) -> bytes:
    assert call.media is not None
    return anchor.offer(*(call.media.a if leg.name == "a" else call.media.b))


def _recording(b: B2bua, call: Call, pause: bool, by: str) -> None:
    if call.media is None or not call.media.record or call.recording_paused == pause:
        return
    call.recording_paused = pause
    b.emit(PauseRecording(call_id=call.call_id) if pause
           else ResumeRecording(call_id=call.call_id))
    b.log("call.control", call_id=call.call_id, app=call.app_id,
          op="pause_recording" if pause else "resume_recording", by=by)
    b.publish(call, "call.recording_paused" if pause else "call.recording_resumed",
              {**call.event_data(), "by": by})


def snapshot(call: Call) -> dict[str, Any]:
    """A live call as ``GET /oapi/v1/calls`` shows it."""
    state = "ended" if call.finished else \
        "talking" if call.state is CallState.ANSWERED else "ringing"
    return {
        **call.event_data(), "state": state,
        "held": None if call.held is None else ("caller" if call.held == "a" else "callee"),
        "recording": bool(call.media is not None and call.media.record),
        "recording_paused": call.recording_paused,
        "transferring": call.transfer is not None,
        "devices": list(call.devices),
    }
