"""The dial plan: where a dialled string goes, within one app (tenants never meet).

- another device of the app, by sip_user or extension → internal (``one_one``);
- anything else that looks like a phone number → out through the app's trunk;
- a call arriving from a trunk → the device of the DID it was sent to.
Numbers are normalised before matching (``tongdai.numbers``); CDRs keep them as dialled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tongdai import numbers
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.sip.peer import Peer
from tongdai.store.records import DeviceRec, Registration, TrunkRec


@dataclass(frozen=True, slots=True)
class ToDevice:
    device: DeviceRec
    binding: Registration  # the most recently refreshed
    bindings: tuple[Registration, ...] = ()  # all of them: rung in parallel


@dataclass(frozen=True, slots=True)
class ToTrunk:
    trunk: TrunkRec
    number: str  # as sent to the carrier (prefix rules applied)


@dataclass(frozen=True, slots=True)
class Unroutable:
    status: int  # 404 unknown destination, 480 device offline, 503 no trunk
    reason: str


Target = ToDevice | ToTrunk | Unroutable

# A device registered from several places (desk phone, softphone, mobile app) rings on
# all of them at once; more than this many bindings is a misconfiguration, not a need.
MAX_FORKS = 8


def carrier_number(trunk: TrunkRec, dialled: str) -> str:
    n = numbers.normalize(dialled)
    return trunk.prefix + n[trunk.strip:]


class DialPlan:
    def __init__(self, *, directory: DeviceDirectory, location: Location) -> None:
        self.directory = directory
        self.store = directory.store
        self.location = location

    async def route(self, app_id: str, dialled: str) -> Target:
        dev = await self.directory.find(app_id, dialled, time.time())
        if dev is not None:
            return self.to_device(dev)
        if not numbers.is_phone_number(dialled):
            return Unroutable(404, "Not Found")
        try:
            numbers.normalize(dialled)
        except ValueError:
            return Unroutable(404, "Not Found")
        trunks = await self.directory.trunks(app_id, time.time())
        if not trunks:
            return Unroutable(503, "No Route")
        trunk = trunks[0]
        return ToTrunk(trunk, carrier_number(trunk, dialled))

    def to_device(self, dev: DeviceRec) -> Target:
        regs = self.location.bindings(dev.sip_user)
        if not regs:
            return Unroutable(480, "Temporarily Unavailable")
        return ToDevice(dev, regs[0], tuple(regs[:MAX_FORKS]))

    async def inbound(self, trunk: TrunkRec, dialled: str) -> tuple[str, Target]:
        """(DID number, target) for a call from ``trunk`` to ``dialled``."""
        try:
            did_number = numbers.normalize(dialled)
        except ValueError:
            return dialled, Unroutable(404, "Not Found")
        did = await self.store.get_did(did_number)
        if did is None or did.app_id != trunk.app_id:
            return did_number, Unroutable(404, "Not Found")
        dev = await self.directory.get(did.sip_user, time.time())
        if dev is None:
            return did_number, Unroutable(404, "Not Found")
        return did_number, self.to_device(dev)

    async def trunk_of(self, peer: Peer) -> TrunkRec | None:
        """The trunk a request came from. Over UDP the source must match the trunk's
        host and port; over a connection, its host (the source port is ephemeral)."""
        for t in await self.directory.trunks(None, time.time()):
            if t.host != peer.host:
                continue
            if peer.transport != "udp" or t.port == peer.port:
                return t
        return None


def binding_peer(reg: Registration) -> Peer:
    """Where requests to a registered device go: the address its REGISTER came from."""
    return Peer(reg.transport, reg.source_host, reg.source_port)


def trunk_peer(trunk: TrunkRec) -> Peer:
    return Peer(trunk.transport, trunk.host, trunk.port)
