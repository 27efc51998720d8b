"""The asyncio shell around the pure B2BUA: it turns endpoint events and lookups into
core events, and performs the actions the core returns through ``_PERFORM``, one entry
per action: SIP through a ``SipSender`` (``driver_sip``), media and the call flows
(``driver_media``), CDRs and checkpoints (``driver_store``), timers (``driver_timers``),
the bus, logs and lookups (here). It holds no call logic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from tongdai import logs
from tongdai.background import stop_task
from tongdai.bus.events import Event as BusEvent
from tongdai.bus.protocol import EventBus
from tongdai.media.engine import MediaEngine
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
from tongdai.pbx.b2bua.driver_media import CallMedia
from tongdai.pbx.b2bua.driver_sip import Signalling, SipSender
from tongdai.pbx.b2bua.driver_store import CallStorage
from tongdai.pbx.b2bua.driver_timers import CallTimers
from tongdai.pbx.b2bua.events import (
    ClickToCall,
    ClientResponse,
    ClientTimeout,
    ClientUnreachable,
    NewCall,
    Refuse,
    Routed,
    ServerTimeout,
    Shutdown,
)
from tongdai.pbx.b2bua.flow_events import (
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

log = logging.getLogger("tongdai.calls")

# How long ``stop`` waits for calls' ends to be written.
STOP_WAIT = 5.0
CALL_ID_BYTES = 10  # our call_id, as CDRs and the Open API show it (20 hex digits)
REF_BYTES = 8


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
        self.routing = routing
        self.bus = bus
        self.location = location
        self.wall = wall_clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self.webrtc = WebRtcEdge()  # browsers' legs: their SDP made plain and back
        self.media = CallMedia(engine=media, core=core, webrtc=self.webrtc, flows=flows,
                               feed=self.feed, spawn=self._spawn, timeout=media_timeout)
        self.signalling = Signalling(sender=sip, webrtc=self.webrtc,
                                     sessions=self.media.sessions)
        self.storage = CallStorage(cdrs=cdrs, core=core, sessions=self.media.sessions,
                                   feed=self.feed, spawn=self._spawn, wall_clock=wall_clock,
                                   checkpoint_interval=checkpoint_interval)
        self.timers = CallTimers(feed=self.feed)

    def set_local_port(self, port: int) -> None:
        self.core.msg.port = port

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self.media.watch(), name="media-watchdog")
        self._checkpointer = asyncio.create_task(self.storage.refresh(),
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
        self.timers.close()

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
        anchor = await self.media.anchor(plan.call_id, app_id,
                                         await self.routing.records(app_id))
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
            self.webrtc.incoming(req, self.media.sessions)
            self.feed(RequestReceived(request=req, peer=peer, txn=txn))

    def on_cancel(self, req: Request, peer: Peer, invite_txn: str) -> None:
        self.feed(CancelReceived(request=req, peer=peer, invite_txn=invite_txn))

    def on_response(self, resp: Response, txn: str, retransmission: bool = False) -> None:
        ref = self.signalling.ref(txn)
        if ref is None:
            return
        if resp.status >= 200:
            self.signalling.forget(txn)
        self.webrtc.incoming(resp, self.media.sessions)
        self.feed(ClientResponse(ref=ref, response=resp, retransmission=retransmission))

    def on_stray(self, resp: Response, peer: Peer) -> None:
        self.feed(StrayResponse(response=resp, peer=peer))

    def on_timeout(self, txn: str, req: Request) -> None:
        ref = self.signalling.forget(txn)
        self.feed(ClientTimeout(ref=ref) if ref is not None else ServerTimeout(txn=txn))

    def on_transport_error(self, txn: str) -> None:
        ref = self.signalling.forget(txn)
        if ref is not None:
            self.feed(ClientUnreachable(ref=ref))

    async def _new_call(self, req: Request, peer: Peer, txn: str) -> None:
        offer = self.webrtc.new_call(req)
        routed = await self.routing.inbound(req, peer, txn)
        if routed is None:
            return
        anchor = None
        # Only a routable call gets media (a flow answers whatever its DID's device).
        if routed.flow is not None or not isinstance(routed.target, Refuse):
            app_id = routed.plan.app_id
            anchor = await self.media.anchor(routed.plan.call_id, app_id,
                                             await self.routing.records(app_id))
        if offer is not None:
            call_id = routed.plan.call_id
            self.webrtc.caller(req, call_id, offer, self.media.sessions.get(call_id))
        self.feed(NewCall(plan=routed.plan, request=req, peer=peer, txn=txn,
                          target=routed.target, media=anchor, flow=routed.flow))

    # Out of the core -----------------------------------------------------------

    def _do(self, action: Action) -> None:
        _PERFORM[type(action)](self, action)

    def _publish(self, a: Publish) -> None:
        self._spawn(self.bus.publish(BusEvent(type=a.kind, app_id=a.app_id,
                                              sip_users=a.sip_users, ts=a.ts, data=a.data)))

    def _log(self, a: Log) -> None:
        logs.event(log, a.name, level=a.level, **a.fields)

    async def _lookup(self, call_id: str, app_id: str, number: str,
                      device: str | None) -> None:
        self.feed(Routed(call_id=call_id, target=await self.routing.lookup(
            app_id, number, device)))

    async def _route_transfer(self, call_id: str, app_id: str, to: str) -> None:
        dest = await self.routing.transfer_target(app_id, to)
        self.feed(TransferTo(call_id=call_id, target=dest.target, party=dest.party,
                             devices=dest.devices, by="refer", queue=dest.queue))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())


# What the driver does for each action the core returns: one look-up per action, not
# a walk down a match of twenty class patterns.
_PERFORM: dict[type[Any], Callable[[CallDriver, Any], None]] = {
    SendRequest: lambda d, a: d.signalling.send_request(a),
    Respond: lambda d, a: d.signalling.respond(a),
    SendAck: lambda d, a: d.signalling.send_ack(a),
    CancelLeg: lambda d, a: d.signalling.cancel_leg(a),
    StartMedia: lambda d, a: d.media.start(a),
    StartRecording: lambda d, a: d.media.recording(a),
    PauseRecording: lambda d, a: d.media.recording(a),
    ResumeRecording: lambda d, a: d.media.recording(a),
    StopMedia: lambda d, a: d.media.stop(a),
    Publish: CallDriver._publish,
    WriteCdr: lambda d, a: d.storage.write_cdr(a),
    Checkpoint: lambda d, a: d.storage.checkpoint(a),
    SetTimer: lambda d, a: d.timers.set(a),
    CancelTimer: lambda d, a: d.timers.cancel(a),
    RouteTransfer: lambda d, a: d._spawn(d._route_transfer(a.call_id, a.app_id, a.to)),
    Lookup: lambda d, a: d._spawn(d._lookup(a.call_id, a.app_id, a.number, a.device)),
    Log: CallDriver._log,
    **dict.fromkeys((StartFlow, FlowDialled, FlowInfo, FlowOver, FlowStop, FlowHold),
                    lambda d, a: d.media.flow(a)),
}
