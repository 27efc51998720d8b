"""The asyncio shell around the pure B2BUA: it turns endpoint events and lookups into
core events, and performs the actions the core returns — SIP through a ``SipSender``,
media, the CDR writer, the bus and timers. It holds no call logic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Protocol

from tongdai import logs
from tongdai.background import stop_task
from tongdai.bus.events import Event as BusEvent
from tongdai.bus.protocol import EventBus
from tongdai.media.engine import MediaEngine, MediaSession, MediaUnavailable
from tongdai.pbx.b2bua import control
from tongdai.pbx.b2bua.actions import (
    Action,
    CancelLeg,
    CancelTimer,
    Checkpoint,
    Log,
    Lookup,
    PauseRecording,
    Publish,
    Respond,
    ResumeRecording,
    RouteTransfer,
    SendAck,
    SendRequest,
    SetTimer,
    StartMedia,
    StartRecording,
    StopMedia,
    WriteCdr,
)
from tongdai.pbx.b2bua.core import B2bua, Input
from tongdai.pbx.b2bua.events import (
    Anchor,
    ClickToCall,
    ClientResponse,
    ClientTimeout,
    ClientUnreachable,
    MediaSilent,
    MediaStopped,
    NewCall,
    Refuse,
    Routed,
    ServerTimeout,
    Shutdown,
    Stored,
    TimerFired,
)
from tongdai.pbx.b2bua.flow_events import (
    FlowAction,
    FlowDialled,
    FlowHold,
    FlowInfo,
    FlowOver,
    FlowStop,
    StartFlow,
)
from tongdai.pbx.b2bua.routing import Routing
from tongdai.pbx.b2bua.transfer import TransferTo
from tongdai.pbx.cdrwriter import CdrWriter
from tongdai.pbx.flow.runtime import FlowRuntime
from tongdai.pbx.location import Location
from tongdai.pbx.protocol import (
    CallRefused,
    ControlOp,
    DeviceOffline,
    InvalidNumber,
    NoRoute,
    Side,
)
from tongdai.pbx.webrtc_edge import WebRtcEdge
from tongdai.sip import ids
from tongdai.sip.events import CancelReceived, RequestReceived, StrayResponse
from tongdai.sip.message import Request, Response
from tongdai.sip.peer import Peer
from tongdai.store.records import Cdr

log = logging.getLogger("tongdai.calls")

# How often a failed CDR write is tried, and the pause before each retry (seconds,
# growing): a database that blinks loses no record.
CDR_TRIES = 5
CDR_BACKOFF = 0.2
# How long ``stop`` waits for calls' ends to be written.
STOP_WAIT = 5.0
# How often answered calls' media is checked for silence (at most; half the timeout
# when that is shorter).
WATCHDOG_PERIOD = 5.0
CALL_ID_BYTES = 10  # our call_id, as CDRs and the Open API show it (20 hex digits)
REF_BYTES = 8


class SipSender(Protocol):
    """What the driver needs of the SIP shell."""

    def send_request(self, request: Request, peer: Peer) -> str: ...
    def send_response(self, txn: str, response: Response) -> None: ...
    def send_stateless(self, message: Request | Response, peer: Peer) -> None: ...
    def cancel(self, invite_txn: str) -> str | None: ...


class RandomIds:
    """The core's identifiers, all from ``sip/ids.py`` (the OS's CSPRNG read a page at
    a time: a system call per identifier was a good part of a call's set-up)."""

    tag = staticmethod(ids.new_tag)
    sip_call_id = staticmethod(ids.new_call_id)
    cnonce = staticmethod(ids.new_cnonce)

    def call_id(self) -> str:
        return ids.token_hex(CALL_ID_BYTES)

    def ref(self) -> str:
        return ids.token_hex(REF_BYTES)


class CallDriver:
    """The call layer as the router and the Open API see it (``CallHandler``,
    ``CallControl``)."""

    def __init__(
        self, *, core: B2bua, sip: SipSender, routing: Routing, media: MediaEngine,
        cdrs: CdrWriter, bus: EventBus, location: Location, wall_clock: Callable[[], float],
        checkpoint_interval: float, media_timeout: float, flows: FlowRuntime | None = None,
    ) -> None:
        self.core = core
        self.flows = flows  # DIDs with a call flow (``tongdai.pbx.flow``)
        if flows is not None:
            flows.feed = self.feed
        self.sip = sip
        self.routing = routing
        self.media = media
        self.cdrs = cdrs
        self.bus = bus
        self.location = location
        self.wall = wall_clock
        self.checkpoint_interval = checkpoint_interval
        self.media_timeout = media_timeout
        self._refs: dict[str, str] = {}  # endpoint txn → the core's ref
        self._txns: dict[str, str] = {}  # and back, while the transaction lives
        self._sessions: dict[str, MediaSession] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self.webrtc = WebRtcEdge()  # browsers' legs: their SDP made plain and back

    def set_local_port(self, port: int) -> None:
        self.core.msg.port = port

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._media_watchdog(), name="media-watchdog")
        self._checkpointer = asyncio.create_task(self._refresh_checkpoints(),
                                                 name="call-checkpoints")

    async def stop(self) -> None:
        self.feed(Shutdown())
        # A call's end is a chain (store, tell the peers, close media, store the CDR,
        # publish), each step its own task: wait for the chains, not the first links.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        await stop_task(self._watchdog)
        await stop_task(self._checkpointer)
        self._watchdog = self._checkpointer = None
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # Into the core -------------------------------------------------------------

    def feed(self, event: Input) -> None:
        for action in self.core.handle(event, self.wall()):
            try:
                self._do(action)
            except Exception:
                log.exception("call action %s failed", type(action).__name__)

    # CallControl ---------------------------------------------------------------

    def is_registered(self, sip_user: str) -> bool:
        return self.location.is_registered(sip_user)

    async def click_to_call(
        self, *, app_id: str, sip_user: str, number: str, external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        plan, agent, device = await self.routing.click_to_call(
            app_id=app_id, sip_user=sip_user, number=number, external_id=external_id,
            metadata=metadata)
        anchor = await self._media(plan.call_id, app_id)
        self.feed(ClickToCall(plan=plan, agent=agent, number=number, device=device,
                              media=anchor))
        return plan.call_id

    def live_calls(self, app_id: str) -> list[dict[str, Any]]:
        return [control.snapshot(c) for c in self.core.calls.values()
                if c.app_id == app_id and not c.finished]

    def control(self, *, app_id: str, call_id: str, op: ControlOp,
                party: Side | None = None) -> dict[str, Any]:
        self._check(app_id, call_id, op)
        self.feed(control.Control(call_id=call_id, op=op, party=party, by="api"))
        return self._snapshot(call_id)

    async def transfer(self, *, app_id: str, call_id: str, to: str,
                       replace: Side | None = None) -> dict[str, Any]:
        self._check(app_id, call_id, "transfer")
        dest = await self.routing.transfer_target(app_id, to)
        if dest.queue is None and isinstance(dest.target, Refuse):
            if dest.target.outside:
                raise NoRoute(to)
            raise DeviceOffline(to) if dest.target.status == 480 else InvalidNumber(to)
        self._check(app_id, call_id, "transfer")  # it may have changed meanwhile
        self.feed(TransferTo(call_id=call_id, target=dest.target, party=dest.party,
                             devices=dest.devices, replace=replace, by="api",
                             queue=dest.queue))
        return self._snapshot(call_id)

    def _check(self, app_id: str, call_id: str, op: ControlOp | Literal["transfer"]) -> None:
        refusal = control.refusal(self.core, app_id, call_id, op)
        if refusal is not None:
            raise CallRefused(refusal)

    def _snapshot(self, call_id: str) -> dict[str, Any]:
        call = self.core.calls.get(call_id)
        return control.snapshot(call) if call is not None else {"call_id": call_id}

    # CallHandler (from the router) ---------------------------------------------

    def on_request(self, req: Request, peer: Peer, txn: str | None) -> None:
        if req.method == "INVITE" and not req.to_tag and txn is not None:
            self._spawn(self._new_call(req, peer, txn))
        else:
            self.webrtc.incoming(req, self._sessions)
            self.feed(RequestReceived(request=req, peer=peer, txn=txn))

    def on_cancel(self, req: Request, peer: Peer, invite_txn: str) -> None:
        self.feed(CancelReceived(request=req, peer=peer, invite_txn=invite_txn))

    def on_response(self, resp: Response, txn: str, retransmission: bool = False) -> None:
        ref = self._refs.get(txn)
        if ref is None:
            return
        if resp.status >= 200:
            self._forget_txn(txn)
        self.webrtc.incoming(resp, self._sessions)
        self.feed(ClientResponse(ref=ref, response=resp, retransmission=retransmission))

    def on_stray(self, resp: Response, peer: Peer) -> None:
        self.feed(StrayResponse(response=resp, peer=peer))

    def on_timeout(self, txn: str, req: Request) -> None:
        ref = self._forget_txn(txn)
        self.feed(ClientTimeout(ref=ref) if ref is not None else ServerTimeout(txn=txn))

    def on_transport_error(self, txn: str) -> None:
        ref = self._forget_txn(txn)
        if ref is not None:
            self.feed(ClientUnreachable(ref=ref))

    def _forget_txn(self, txn: str) -> str | None:
        ref = self._refs.pop(txn, None)
        if ref is not None:
            self._txns.pop(ref, None)
        return ref

    async def _new_call(self, req: Request, peer: Peer, txn: str) -> None:
        offer = self.webrtc.new_call(req)
        routed = await self.routing.inbound(req, peer, txn)
        if routed is None:
            return
        anchor = None
        # Only a routable call gets media (a flow answers whatever its DID's device).
        if routed.flow is not None or not isinstance(routed.target, Refuse):
            anchor = await self._media(routed.plan.call_id, routed.plan.app_id)
        if offer is not None:
            call_id = routed.plan.call_id
            self.webrtc.caller(req, call_id, offer, self._sessions.get(call_id))
        self.feed(NewCall(plan=routed.plan, request=req, peer=peer, txn=txn,
                          target=routed.target, media=anchor, flow=routed.flow))

    async def _media(self, call_id: str, app_id: str) -> Anchor | None:
        record = await self.routing.records(app_id)
        try:
            session = await self.media.create_session(call_id=call_id, app_id=app_id,
                                                      record=record)
        except MediaUnavailable:
            return None
        self._sessions[call_id] = session
        self.webrtc.media_created(call_id, session)
        return Anchor(a=session.local_address("a"), b=session.local_address("b"),
                      record=record)

    # Out of the core -----------------------------------------------------------

    def _do(self, action: Action) -> None:
        _PERFORM[type(action)](self, action)

    def _send_request(self, a: SendRequest) -> None:
        self.webrtc.outgoing(a.request, a.peer, self._sessions)
        sent = self.sip.send_request(a.request, a.peer)
        self._refs[sent] = a.ref
        self._txns[a.ref] = sent

    def _respond(self, a: Respond) -> None:
        self.webrtc.outgoing(a.response, None, self._sessions)
        self.sip.send_response(a.txn, a.response)

    def _send_ack(self, a: SendAck) -> None:
        self.webrtc.outgoing(a.ack, a.peer, self._sessions)
        self.sip.send_stateless(a.ack, a.peer)

    def _cancel_leg(self, a: CancelLeg) -> None:
        if (invite_txn := self._txns.get(a.ref)) is not None:
            self.sip.cancel(invite_txn)

    def _start_media(self, a: StartMedia) -> None:
        if (session := self._sessions.get(a.call_id)) is not None:
            session.set_remote(a.leg, a.host, a.port)

    def _with_session(self, a: StartRecording | PauseRecording | ResumeRecording) -> None:
        if (session := self._sessions.get(a.call_id)) is None:
            return
        match a:
            case StartRecording():
                session.start_recording()
            case PauseRecording():
                session.pause_recording()
            case ResumeRecording():
                session.resume_recording()

    def _flow(self, a: FlowAction) -> None:
        if self.flows is not None:
            self.flows.perform(a, self._sessions.get(a.call_id))

    def _publish(self, a: Publish) -> None:
        self._spawn(self.bus.publish(BusEvent(type=a.kind, app_id=a.app_id,
                                              sip_users=a.sip_users, ts=a.ts, data=a.data)))

    def _checkpoint_action(self, a: Checkpoint) -> None:
        session = self._sessions.get(a.checkpoint.call_id)
        cp = dataclasses.replace(a.checkpoint, node=self.cdrs.node, checkpoint_at=self.wall(),
                                 recording=session.recording if session else "")
        self._spawn(self._checkpoint(cp.call_id, self.cdrs.checkpoint(cp), a.purpose))

    def _set_timer(self, a: SetTimer) -> None:
        key = (a.call_id, a.name)
        if (old := self._timers.pop(key, None)) is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(
            a.delay, self._fire, a.call_id, a.name)

    def _cancel_timer(self, a: CancelTimer) -> None:
        if (handle := self._timers.pop((a.call_id, a.name), None)) is not None:
            handle.cancel()

    def _log(self, a: Log) -> None:
        logs.event(log, a.name, level=a.level, **a.fields)

    def _fire(self, call_id: str, name: str) -> None:
        self._timers.pop((call_id, name), None)
        self.feed(TimerFired(call_id=call_id, name=name))

    async def _lookup(self, call_id: str, app_id: str, number: str,
                      device: str | None) -> None:
        self.feed(Routed(call_id=call_id, target=await self.routing.lookup(
            app_id, number, device)))

    async def _route_transfer(self, call_id: str, app_id: str, to: str) -> None:
        dest = await self.routing.transfer_target(app_id, to)
        self.feed(TransferTo(call_id=call_id, target=dest.target, party=dest.party,
                             devices=dest.devices, by="refer", queue=dest.queue))

    async def _stop_media(self, call_id: str) -> None:
        if self.flows is not None:
            await self.flows.close(call_id)  # a voicemail being written is kept
        session = self._sessions.pop(call_id, None)
        self.webrtc.forget(call_id, session)
        recording = ""
        if session is not None:
            try:
                recording = await session.close()
            except Exception:
                log.exception("call %s: closing media failed", call_id)
        self.feed(MediaStopped(call_id=call_id, recording=recording))

    async def _write_cdr(self, cdr: Cdr, purpose: Any) -> None:
        ok = False
        for attempt in range(CDR_TRIES):
            try:
                await self.cdrs.write(cdr)
                ok = True
                break
            except Exception:
                log.exception("call %s: storing the CDR failed (try %d)", cdr.call_id, attempt)
                await asyncio.sleep(CDR_BACKOFF * (attempt + 1))
        self.feed(Stored(call_id=cdr.call_id, purpose=purpose, ok=ok))

    async def _checkpoint(self, call_id: str, write: Coroutine[Any, Any, None],
                          purpose: Any) -> None:
        ok = True
        try:
            await write
        except Exception as exc:
            ok = False
            logs.event(log, "call.store_failed", level=logging.ERROR, call_id=call_id,
                       what="checkpoint", error=str(exc))
        self.feed(Stored(call_id=call_id, purpose=purpose, ok=ok))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    # Background ----------------------------------------------------------------

    async def _refresh_checkpoints(self) -> None:
        """Move this server's answered calls' checkpoints forward (one UPDATE for all),
        so a crash takes at most ``checkpoint_interval`` off a call's duration."""
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            if not self.core.answered_calls():
                continue
            try:
                await self.cdrs.touch(self.wall())
            except Exception as exc:
                logs.event(log, "call.checkpoint_failed", level=logging.WARNING,
                           error=str(exc))

    async def _media_watchdog(self) -> None:
        """Tell the core how long each answered call's quieter side has been silent."""
        while True:
            await asyncio.sleep(min(WATCHDOG_PERIOD, self.media_timeout / 2))
            now = self.media.clock()  # the clock of the media's activity times, no other
            for call in self.core.answered_calls():
                session = self._sessions.get(call.call_id)
                if session is None:
                    continue
                silent = now - min(session.leg_activity("a"), session.leg_activity("b"))
                if silent > self.media_timeout:
                    self.feed(MediaSilent(call_id=call.call_id, seconds=silent))
            if self.flows is None or not self.flows.runs:
                continue
            for call_id in list(self.flows.runs):  # callers in menus and queues
                in_flow = self.core.calls.get(call_id)
                session = self._sessions.get(call_id)
                if in_flow is None or session is None or in_flow.answered_at is not None:
                    continue
                silent = now - session.leg_activity("a")
                if silent > self.media_timeout:
                    self.feed(MediaSilent(call_id=call_id, seconds=silent))


# What the driver does for each action the core returns: one look-up per action, not
# a walk down a match of twenty class patterns.
_PERFORM: dict[type[Any], Callable[[CallDriver, Any], None]] = {
    SendRequest: CallDriver._send_request,
    Respond: CallDriver._respond,
    SendAck: CallDriver._send_ack,
    CancelLeg: CallDriver._cancel_leg,
    StartMedia: CallDriver._start_media,
    StartRecording: CallDriver._with_session,
    PauseRecording: CallDriver._with_session,
    ResumeRecording: CallDriver._with_session,
    StopMedia: lambda d, a: d._spawn(d._stop_media(a.call_id)),
    Publish: CallDriver._publish,
    WriteCdr: lambda d, a: d._spawn(d._write_cdr(a.cdr, a.purpose)),
    Checkpoint: CallDriver._checkpoint_action,
    SetTimer: CallDriver._set_timer,
    CancelTimer: CallDriver._cancel_timer,
    RouteTransfer: lambda d, a: d._spawn(d._route_transfer(a.call_id, a.app_id, a.to)),
    Lookup: lambda d, a: d._spawn(d._lookup(a.call_id, a.app_id, a.number, a.device)),
    Log: CallDriver._log,
    **dict.fromkeys((StartFlow, FlowDialled, FlowInfo, FlowStop, FlowOver, FlowHold),
                    CallDriver._flow),
}
