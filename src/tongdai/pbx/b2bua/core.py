"""The pure B2BUA: ``handle(event, now)`` → the actions that event calls for.

It is the transaction user for call requests and owns every call's state; the feature
modules (``inbound``, ``outbound``, ``click_to_call``, ``in_dialog``, ``ending``) hold
the rules, this module the shared mechanics and the dispatch. No I/O, no clock, no
randomness: time comes in as ``now``, identifiers from the injected ``Ids``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import (
    click_to_call,
    control,
    ending,
    flow_call,
    in_dialog,
    inbound,
    outbound,
    reliable,
    session_timer,
    transfer,
)
from tongdai.pbx.b2bua.actions import (
    Action,
    CancelLeg,
    CancelTimer,
    Log,
    Publish,
    SendAck,
    SendRequest,
    SetTimer,
    StartMedia,
)
from tongdai.pbx.b2bua.ended import DialogKey, EndedDialogs
from tongdai.pbx.b2bua.events import (
    ClickToCall,
    ClientResponse,
    ClientTimeout,
    ClientUnreachable,
    Event,
    MediaSilent,
    MediaStopped,
    NewCall,
    Routed,
    ServerTimeout,
    Shutdown,
    Stored,
    TimerFired,
)
from tongdai.pbx.b2bua.flow_events import FlowCommand, FlowDial, FlowHangup, FlowNote
from tongdai.pbx.b2bua.messages import Messages
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import LegInput, LegState
from tongdai.sip.dialog import Dialog
from tongdai.sip.events import CancelReceived, RequestReceived, StrayResponse
from tongdai.sip.message import Request, Response

# What the core is told: SIP and the driver's results, and commands on live calls.
Input = Event | control.Control | transfer.TransferTo | FlowCommand

# The longest a peer waits for a call's answer or end to become durable before it is
# told anyway: far below the 32 s after which its transaction would give up.
DURABLE_WAIT = 2.0
# How long an ended call's dialogs stay known (``ended``): a BYE that crossed ours
# still gets its 200 rather than 481. Repeats of requests and responses need no call:
# the transaction layer answers them for 64·T1.
LINGER = 32.0


class Ids(Protocol):
    """Fresh identifiers: the only randomness the core needs, injected."""

    def call_id(self) -> str: ...  # ours, as CDRs and the Open API show it
    def sip_call_id(self) -> str: ...  # a leg's Call-ID header
    def tag(self) -> str: ...  # From/To tags (RFC 3261 §19.3)
    def ref(self) -> str: ...  # our name for a client transaction
    def cnonce(self) -> str: ...  # digest client nonce (RFC 7616)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    ring_timeout: float
    max_call_duration: float
    media_timeout: float
    durable_wait: float = DURABLE_WAIT
    # RFC 4028: the session interval we ask for, and the smallest we accept.
    session_expires: int = session_timer.SESSION_EXPIRES
    min_se: int = session_timer.MIN_SE
    linger: float = LINGER


@dataclass(frozen=True, slots=True)
class Relay:
    """An in-dialog request we forwarded: where its answer goes back."""

    txn: str
    request: Request
    leg: Leg


@dataclass(frozen=True, slots=True)
class Client:
    call: Call
    leg: Leg
    what: Literal["invite", "relay", "refresh"]
    relay: Relay | None = None
    request: Request | None = None  # a refresh: what we sent


class B2bua:
    def __init__(self, *, messages: Messages, limits: Limits, ids: Ids) -> None:
        self.msg = messages
        self.limits = limits
        self.ids = ids
        self.calls: dict[str, Call] = {}
        self.server: dict[str, tuple[Call, Leg]] = {}  # INVITE server txn → leg a
        self.client: dict[str, Client] = {}  # our ref → what it belongs to
        self.dialogs: dict[DialogKey, tuple[Call, Leg]] = {}
        self.ended = EndedDialogs(limits.linger)  # dialogs of calls just over
        self.now = 0.0
        self._out: list[Action] = []

    # The one entry point -------------------------------------------------------

    def handle(self, event: Input, now: float) -> list[Action]:
        self.now = now
        match event:
            case RequestReceived(request=req, peer=peer, txn=txn):
                in_dialog.on_request(self, req, peer, txn)
            case CancelReceived(invite_txn=txn):
                ending.on_cancel(self, txn)
            case StrayResponse(response=resp):
                in_dialog.on_stray(self, resp)
            case NewCall():
                inbound.start(self, event)
            case ClickToCall():
                click_to_call.start(self, event)
            case Routed(call_id=call_id, target=target):
                if (call := self.calls.get(call_id)) is not None:
                    click_to_call.on_routed(self, call, target)
            case ClientResponse(ref=ref, response=resp, retransmission=again):
                self._response(ref, resp, again)
            case ClientTimeout(ref=ref):
                self._client_failed(ref, 408)
            case ClientUnreachable(ref=ref):
                self._client_failed(ref, 503)
            case ServerTimeout(txn=txn):
                ending.on_unacked(self, txn)
            case Stored(call_id=call_id, purpose=purpose):
                if (call := self.calls.get(call_id)) is not None:
                    ending.on_stored(self, call, purpose)
            case MediaStopped(call_id=call_id, recording=recording):
                if (call := self.calls.get(call_id)) is not None:
                    ending.on_media_stopped(self, call, recording)
            case MediaSilent(call_id=call_id, seconds=silent):
                if (call := self.calls.get(call_id)) is not None:
                    ending.on_silence(self, call, silent)
            case TimerFired(call_id=call_id, name=name):
                if (call := self.calls.get(call_id)) is not None:
                    call.timers.discard(name)
                    self._timer(call, name)
            case FlowDial() | FlowNote() | FlowHangup():
                flow_call.on_command(self, event)
            case Shutdown():
                for call in list(self.calls.values()):
                    ending.hangup(self, call, None, "system")
            case control.Control():
                control.handle(self, event)
            case transfer.TransferTo():
                transfer.on_transfer_to(self, event)
        out, self._out = self._out, []
        return out

    def answered_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if c.answered_at is not None and not c.finished]

    def _response(self, ref: str, resp: Response, again: bool) -> None:
        found = self.client.get(ref)
        if found is None:
            return
        if resp.status >= 200:
            self.client.pop(ref, None)
        if found.what == "invite":
            call, leg = found.call, found.leg
            if call.transfer is not None and leg is call.transfer.leg:
                transfer.on_response(self, call, leg, resp, again)
                return
            if not outbound.on_invite_response(self, call, leg, resp, again):
                return
            if call.kind == "click_to_call" and leg.name == "a":
                click_to_call.agent_answered(self, call)  # now the number
            elif call.flow is not None:
                flow_call.agent_answered(self, call, leg, resp)
            else:
                outbound.connected(self, call, resp)
        elif found.relay is not None:
            in_dialog.on_relay_response(self, found.call, found.leg, resp, found.relay)
        elif found.request is not None:
            session_timer.on_refresh_response(self, found.call, found.leg, found.request,
                                              resp)

    def _client_failed(self, ref: str, code: int) -> None:
        found = self.client.pop(ref, None)
        if found is None:
            return
        tr = found.call.transfer
        if tr is not None and found.leg is tr.leg and not found.leg.over:
            transfer.leg_failed(self, found.call, found.leg, code)
        elif found.what == "invite" and not found.leg.answered and not found.leg.over:
            outbound.leg_failed(self, found.call, found.leg, code)
        elif found.relay is not None:
            in_dialog.relay_failed(self, found.relay, code)
        elif found.what == "refresh":  # no answer at all, like a 408 (RFC 4028 §10)
            session_timer.refresh_failed(self, found.call, found.leg, code)

    def _timer(self, call: Call, name: str) -> None:
        match name:
            case "ring":
                outbound.ring_timeout(self, call)
            case "max_duration":
                ending.hangup(self, call, None, "system")
            case "answer_durable":
                ending.release_answer(self, call)
            case "end_durable":
                ending.settle(self, call)
            case "forget":
                self.forget(call)
            case flow_call.RING_TIMER:
                flow_call.ring_timeout(self, call)
            case flow_call.VOICEMAIL_TIMER if call.flow is not None:
                flow_call.hangup(self, call, call.flow)
            case reliable.TIMER:
                reliable.retransmit(self, call)
            case transfer.RING:
                transfer.ring_timeout(self, call)
            case "refresh_a" | "refresh_b" | "expire_a" | "expire_b":
                leg = call.a if name.endswith("_a") else call.b
                if leg is None:
                    return
                if name.startswith("refresh"):
                    session_timer.refresh(self, call, leg)
                else:
                    session_timer.expired(self, call, leg)
            case _:
                pass

    # Shared mechanics -----------------------------------------------------------

    def emit(self, action: Action) -> None:
        self._out.append(action)

    def log(self, name: str, level: int = logging.INFO, **fields: Any) -> None:
        self.emit(Log(name=name, level=level, fields=fields))

    def add(self, call: Call) -> None:
        self.calls[call.call_id] = call

    def set_timer(self, call: Call, name: str, delay: float) -> None:
        call.timers.add(name)
        self.emit(SetTimer(call_id=call.call_id, name=name, delay=delay))

    def cancel_timer(self, call: Call, name: str) -> None:
        if name in call.timers:
            call.timers.discard(name)
            self.emit(CancelTimer(call_id=call.call_id, name=name))

    def send_invite(self, call: Call, leg: Leg, req: Request) -> None:
        self.log_start(call)
        session_timer.offer(self, req)
        leg.invite = req
        leg.local_sdp = req.body
        ref = self.ids.ref()
        leg.txn = ref
        self.client[ref] = Client(call, leg, "invite")
        self.emit(SendRequest(ref=ref, request=req, peer=leg.peer))

    def send_in_dialog(self, call: Call, leg: Leg, req: Request,
                       relay: Relay | None = None) -> None:
        ref = self.ids.ref()
        if relay is not None:
            self.client[ref] = Client(call, leg, "relay", relay)
        self.emit(SendRequest(ref=ref, request=req, peer=leg.peer))

    def ack(self, leg: Leg, ack: Request) -> None:
        self.emit(SendAck(ack=ack, peer=leg.peer))

    def cancel_leg(self, leg: Leg) -> None:
        """CANCEL a leg of ours that has not answered (RFC 3261 §9.1)."""
        if leg.uas or leg.state not in (LegState.CALLING, LegState.RINGING) or leg.txn is None:
            return
        leg.fire(LegInput.CANCEL)
        self.emit(CancelLeg(ref=leg.txn))

    def bye(self, leg: Leg) -> None:
        """End a leg's dialog (RFC 3261 §15.1.1); a leg without one just ends."""
        dialog = leg.dialog
        if leg.state is LegState.ANSWERED and dialog is not None:
            self.send_in_dialog_untracked(leg, dialog.create_request("BYE"))
        leg.fire(LegInput.BYE)

    def send_refresh(self, call: Call, leg: Leg, req: Request) -> None:
        ref = self.ids.ref()
        self.client[ref] = Client(call, leg, "refresh", request=req)
        self.emit(SendRequest(ref=ref, request=req, peer=leg.peer))

    def send_in_dialog_untracked(self, leg: Leg, req: Request) -> None:
        self.emit(SendRequest(ref=self.ids.ref(), request=req, peer=leg.peer))

    def media_to(self, call: Call, leg: Leg, body: bytes) -> None:
        """Point leg ``leg``'s media where its SDP ``body`` asks for it."""
        if call.media is None:
            return
        remote = anchor.remote_of(body)
        if remote is not None:
            self.emit(StartMedia(call_id=call.call_id, leg=leg.name, host=remote[0],
                                 port=remote[1]))

    def track(self, call: Call, leg: Leg, dialog: Dialog) -> None:
        leg.dialog = dialog
        self.dialogs[dialog.id] = (call, leg)

    def when_settled(self, call: Call, step: Callable[[], None]) -> None:
        """Run ``step`` once the call's end is durable (now if it already is)."""
        if call.settled:
            step()
        else:
            call.on_settled.append(step)

    def log_start(self, call: Call) -> None:
        if not call.start_logged:
            call.start_logged = True
            self.log("call.started", call_id=call.call_id, app=call.app_id, kind=call.kind,
                     direction=call.direction, caller=call.caller.get("number"),
                     callee=call.callee.get("number"), did=call.did_number)

    def publish(self, call: Call, kind: str, data: dict[str, Any] | None = None) -> None:
        call.events_sent.add(kind.removeprefix("call."))
        # Every event of a call carries the integrator's correlation, whoever built it.
        data = call.with_correlation(dict(data)) if data is not None else call.event_data()
        self.emit(Publish(kind=kind, app_id=call.app_id, sip_users=call.devices, ts=self.now,
                          data=data))

    def retire(self, call: Call) -> None:
        """The call is over and reported: forget it, keeping only its dialogs' keys
        for a while (``ended``). A leg whose INVITE is still unanswered may yet answer
        (a 200 crossing our CANCEL), and that answer needs the call to be ACKed and
        hung up: such a call stays whole for the linger."""
        legs = (*call.legs(), *call.gone)
        if any(leg.txn is not None and leg.txn in self.client for leg in legs):
            self.set_timer(call, "forget", self.limits.linger)
            return
        for leg in legs:
            if leg.dialog is not None:
                self.ended.add(leg.dialog.id, self.now)
        self.forget(call)

    def forget(self, call: Call) -> None:
        self.calls.pop(call.call_id, None)
        for leg in (*call.legs(), *call.gone):
            if leg.dialog is not None:
                self.dialogs.pop(leg.dialog.id, None)
            if leg.txn is not None:
                self.server.pop(leg.txn, None)
                self.client.pop(leg.txn, None)
