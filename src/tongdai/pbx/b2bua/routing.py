"""The lookups that decide where a call goes, done before the core sees it: which
tenant an INVITE belongs to (trunk and DID, or an authenticated device), where the
dialled string leads (the dial plan), whether the app records. Async, because they
read the directory; their answers reach the core as plain data (``events.Plan`` and
``events.Target``), so the core stays pure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tongdai import logs
from tongdai.pbx import dialplan as dp
from tongdai.pbx.b2bua.events import (
    Binding,
    DialDevice,
    DialTrunk,
    Klass,
    Party,
    Plan,
    Refuse,
    Target,
)
from tongdai.pbx.b2bua.flow_events import RunFlow
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.invite_auth import InviteAuth
from tongdai.pbx.location import Location
from tongdai.pbx.protocol import DeviceOffline, InvalidNumber, NoRoute
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.sip.uri import NameAddr, SipUri
from tongdai.store.records import DeviceRec, TrunkRec

if TYPE_CHECKING:
    from tongdai.pbx.flow.directory import FlowDirectory

log = logging.getLogger("tongdai.calls")


def device_party(dev: DeviceRec) -> Party:
    """A device as the seed's caller/callee object."""
    return {"number": dev.extension or dev.sip_user, "type": "user", "username": dev.sip_user}


def number_party(number: str) -> Party:
    return {"number": number, "type": "realnumber"}


def target_of(t: dp.Target) -> Target:
    """The dial plan's answer in the core's terms."""
    match t:
        case dp.ToDevice(device=dev, binding=first, bindings=regs):
            return DialDevice(sip_user=dev.sip_user, bindings=tuple(
                Binding(contact=r.contact, peer=dp.binding_peer(r), route=r.path)
                for r in regs or (first,)))
        case dp.ToTrunk():
            return _trunk(t)
        case _:
            return Refuse(status=t.status, reason=t.reason, outside=t.outside)


def _trunk(t: dp.ToTrunk) -> DialTrunk:
    return DialTrunk(trunk=t.trunk, number=t.number,
                     then=_trunk(t.then) if t.then is not None else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    plan: Plan
    target: Target
    flow: RunFlow | None = None  # the DID's call flow, which answers the call


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """A transfer's target and the new party as the call's record shows it."""

    target: Target
    party: Party
    devices: tuple[str, ...] = ()
    queue: str | None = None  # the app's queue ``to`` names: the party waits there


# A transfer's ``to`` that names one of the app's queues explicitly: ``queue:sales``.
QUEUE_PREFIX = "queue:"
# The target of a transfer to a queue (``Destination.queue`` says which): nobody is rung.
QUEUE = Refuse(status=501, reason="Not Implemented")
# ``queue:NAME`` where the app has no such queue.
NO_QUEUE = Refuse(status=404, reason="Not Found")


class Routing:
    def __init__(
        self, *, dialplan: dp.DialPlan, directory: DeviceDirectory, location: Location,
        auth: InviteAuth, respond: Callable[[str, Response], None],
        new_call_id: Callable[[], str], new_tag: Callable[[], str],
        wall_clock: Callable[[], float], domain: str, record_default: bool,
        flows: FlowDirectory | None = None,
    ) -> None:
        self.flows = flows
        self.dialplan = dialplan
        self.directory = directory
        self.location = location
        self.auth = auth
        self.respond = respond
        self.new_call_id = new_call_id
        self.new_tag = new_tag
        self.wall = wall_clock
        self.domain = domain
        self.record_default = record_default

    async def records(self, app_id: str) -> bool:
        app = await self.directory.app(app_id, self.wall())
        return bool(app.record_calls) if app is not None else self.record_default

    async def _caller_id(self, app_id: str) -> str:
        app = await self.directory.app(app_id, self.wall())
        return (app.default_did or "") if app is not None else ""

    async def inbound(self, req: Request, peer: Peer, txn: str) -> Routed | None:
        """Whose call a new INVITE is and where it goes; None when it was refused here
        (answered already, no call, no CDR)."""
        trunks = await self.dialplan.trunks_of(peer)
        try:
            dialled = SipUri.parse(req.uri).user or ""
        except Exception:
            self.respond(txn, make_response(req, 400, "Bad Request-URI"))
            return None
        if trunks:
            return await self._from_carrier(req, peer, txn, trunks, dialled)
        if not self.location.known_source(peer.transport, peer.host, peer.port):
            # Neither a trunk nor a registered device: scanners and strangers (§26.3.2.2).
            self.respond(txn, make_response(req, 403, to_tag=self.new_tag()))
            return None
        return await self._from_device(req, peer, txn, dialled)

    async def _from_carrier(self, req: Request, peer: Peer, txn: str,
                            trunks: list[TrunkRec], dialled: str) -> Routed | None:
        # Several apps may share this carrier: the DID says whose call it is.
        inbound = await self.dialplan.inbound(trunks, dialled)
        if inbound is None:
            logs.event(log, "call.refused", reason="unknown_did", did=dialled[:40],
                       source=f"{peer.transport}:{peer.host}:{peer.port}")
            self.respond(txn, make_response(req, 404, to_tag=self.new_tag()))
            return None
        target = inbound.target
        callee = device_party(target.device) if isinstance(target, dp.ToDevice) \
            else number_party(dialled)
        rung: tuple[str, ...] = (target.device.sip_user,) \
            if isinstance(target, dp.ToDevice) else ()
        flow = await self.flows.flow(inbound.did_number) if self.flows is not None else None
        if flow is not None:
            callee, rung = number_party(inbound.did_number), ()  # until an agent answers
        return Routed(target=target_of(target), flow=flow, plan=Plan(
            call_id=self.new_call_id(), app_id=inbound.trunk.app_id, direction="to_ab",
            klass="trunking", caller=number_party(_from_user(req)), callee=callee,
            devices=rung, did_number=inbound.did_number))

    async def _from_device(self, req: Request, peer: Peer, txn: str,
                           dialled: str) -> Routed | None:
        dev = await self.auth.check(req, peer, txn, self.wall())
        if dev is None:
            return None  # challenged or refused by the gate
        flow = await self.flows.extension(dev.app_id, dialled) \
            if self.flows is not None else None
        if flow is not None:  # an extension with a flow: tongdai answers (docs/flows.md)
            return Routed(target=Refuse(status=480, reason="flow"), flow=flow, plan=Plan(
                call_id=self.new_call_id(), app_id=dev.app_id, direction="from_ab",
                klass="one_one", caller=device_party(dev), callee=number_party(dialled),
                devices=(dev.sip_user,)))
        target = await self.dialplan.route(dev.app_id, dialled)
        klass: Klass = "one_one"
        caller_id = ""
        devices: tuple[str, ...] = (dev.sip_user,)
        if isinstance(target, dp.ToDevice):
            callee = device_party(target.device)
            devices = (dev.sip_user, target.device.sip_user)
        else:
            callee = number_party(dialled)
            if isinstance(target, dp.ToTrunk):
                klass = "trunking"
                caller_id = await self._caller_id(dev.app_id)
            elif target.outside:
                klass = "trunking"  # no trunk serves the number (docs/cdr.md)
        return Routed(target=target_of(target), plan=Plan(
            call_id=self.new_call_id(), app_id=dev.app_id, direction="from_ab", klass=klass,
            caller=device_party(dev), callee=callee, devices=devices, caller_id=caller_id))

    async def click_to_call(
        self, *, app_id: str, sip_user: str, number: str, external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Plan, Binding, str | None]:
        """The call to start, the agent's binding to ring, and the device the number
        names (None for an outside number). Refuses before anyone rings."""
        regs = await self.location.lookup(sip_user)
        dev = await self.directory.get(sip_user, self.wall())
        if not regs or dev is None or dev.app_id != app_id:
            raise DeviceOffline(sip_user)
        # The number is checked now, not once the agent has answered.
        target = await self.dialplan.route(app_id, number)
        if isinstance(target, dp.Unroutable) and target.outside:
            raise NoRoute(number)
        if isinstance(target, dp.Unroutable) and target.status == 404:
            raise InvalidNumber(number)
        klass: Klass = "one_one"
        caller_id = ""
        callee = number_party(number)
        devices: tuple[str, ...] = (sip_user,)
        device: str | None = None
        if isinstance(target, dp.ToDevice):
            callee = device_party(target.device)
            devices = (sip_user, target.device.sip_user)
            device = target.device.sip_user
        elif isinstance(target, dp.ToTrunk):
            klass = "trunking"
            caller_id = await self._caller_id(app_id)
        plan = Plan(call_id=self.new_call_id(), app_id=app_id, direction="from_ab",
                    klass=klass, caller=device_party(dev), callee=callee, devices=devices,
                    caller_id=caller_id, external_id=external_id, metadata=metadata)
        agent = Binding(contact=regs[0].contact, peer=dp.binding_peer(regs[0]),
                        route=regs[0].path)
        return plan, agent, device

    async def transfer_target(self, app_id: str, to: str) -> Destination:
        """Where a transfer to ``to`` goes, by the dial plan's rule (a device of the
        app by sip_user or extension, else an outside number through its trunks), and
        who the new party is in the call's record. A queue of the app — named
        ``queue:NAME``, or by its bare name when that is no device or routable number —
        comes back with ``queue`` set: the staying party waits there (``transfer``);
        ``queue:NAME`` of no queue of the app is refused (404)."""
        if to[:len(QUEUE_PREFIX)].lower() == QUEUE_PREFIX:
            name = to[len(QUEUE_PREFIX):]
            if self.flows is None or await self.flows.queue(app_id, name) is None:
                return Destination(target=NO_QUEUE, party={"queue": name, "type": "queue"})
            return _to_queue(name)
        target = await self.dialplan.route(app_id, to)
        if isinstance(target, dp.ToDevice):
            return Destination(target=target_of(target), party=device_party(target.device),
                               devices=(target.device.sip_user,))
        if not isinstance(target, dp.ToTrunk) and self.flows is not None \
                and await self.flows.queue(app_id, to) is not None:
            return _to_queue(to)  # unambiguous: nothing else answers to that name
        return Destination(target=target_of(target), party=number_party(to))

    async def lookup(self, app_id: str, number: str, device: str | None) -> Target:
        """Where a click-to-call's number goes now that the agent answered."""
        if device is not None:
            dev = await self.directory.get(device, self.wall())
            if dev is not None:
                return target_of(await self.dialplan.reach(dev))
        return target_of(await self.dialplan.route(app_id, number))


def _to_queue(name: str) -> Destination:
    return Destination(target=QUEUE, party={"queue": name, "type": "queue"},
                       queue=name)


def _from_user(req: Request) -> str:
    try:
        return NameAddr.parse(req.headers.get("from") or "").uri.user or "anonymous"
    except Exception:
        return "anonymous"
