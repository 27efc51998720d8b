"""The dial plan: where a dialled string goes, within one app (tenants never meet).

- another device of the app, by sip_user or extension → internal (``one_one``);
- a number a carrier can call (``numbers.dialable``) → out through the first of the
  app's trunks that serve it, then the next ones if it fails (``pbx.routes``);
- a call arriving from a trunk → the device of the DID it was sent to.
Numbers are normalised before matching (``tongdai.numbers``); CDRs keep them as dialled.

Which trunk a request comes from. A trunk is a transport, a host and a port, and a
request comes from it only when it arrived over that transport from that address:
over UDP its source address and port; over TCP the connection, which counts when its
remote end is the trunk's host and port — because tongdai opened it to that address
(the TCP shell names an outgoing connection by the address it dialled), or because
the carrier connected from its configured port. A UDP trunk never matches a TCP
source, nor a TCP trunk a UDP one, and a connection from any other port of the same
host is a stranger (403 for an INVITE, and no CDR). Several apps may buy from one
carrier, so several trunks can match one source: the called DID decides whose call it
is, and a DID that belongs to none of their apps is refused (404) without a CDR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tongdai import numbers
from tongdai.clock import Clock
from tongdai.pbx import path, routes
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.sip.peer import Peer, bare_host
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
    # The next trunk to try when this one fails as a trunk (``routes.failover``): the
    # app's trunks that serve the number, in ``routes.trunk_order``.
    then: ToTrunk | None = None


@dataclass(frozen=True, slots=True)
class Unroutable:
    status: int  # 404 unknown destination or not a number, 480 device offline, 503 no trunk
    reason: str
    # A valid outside number that no trunk serves: the call would have gone out, so its
    # CDR is ``trunking`` (docs/cdr.md).
    outside: bool = False


Target = ToDevice | ToTrunk | Unroutable


@dataclass(frozen=True, slots=True)
class Inbound:
    """A call from a carrier to one of an app's DIDs."""

    trunk: TrunkRec  # the app's trunk the call arrived on
    did_number: str  # normalised
    target: Target


# A device registered from several places (desk phone, softphone, mobile app) rings on
# all of them at once; more than this many bindings is a misconfiguration, not a need.
MAX_FORKS = 8


def carrier_number(trunk: TrunkRec, dialled: str) -> str:
    n = numbers.normalize(dialled)
    return trunk.prefix + n[trunk.strip:]


def outside_route(trunks: Sequence[TrunkRec], dialled: str) -> ToTrunk | Unroutable:
    """The way out for an outside number: the first of the trunks that serve it, each
    linked to the next (``ToTrunk.then``); 404 when ``dialled`` is not a number a
    carrier can call (``numbers.dialable``), 503 when no trunk serves it."""
    try:
        number = numbers.dialable(dialled)
    except ValueError:
        return Unroutable(404, "Not Found")
    target: ToTrunk | None = None
    for trunk in reversed(routes.trunk_order(trunks, number)):
        target = ToTrunk(trunk, carrier_number(trunk, number), then=target)
    return target if target is not None else Unroutable(503, "No Route", outside=True)


class DialPlan:
    def __init__(
        self, *, directory: DeviceDirectory, location: Location, clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.store = directory.store
        self.location = location
        # The directory's clock unless told otherwise: its cache entries age by it.
        self.clock = clock if clock is not None else directory.clock

    async def route(self, app_id: str, dialled: str) -> Target:
        """A device of the app (by sip_user or extension) first, then an outside
        number through the trunks that serve it (``outside_route``)."""
        dev = await self.directory.find(app_id, dialled, self.clock())
        if dev is not None:
            return await self.reach(dev)
        return outside_route(await self.directory.trunks(app_id, self.clock()), dialled)

    async def reach(self, dev: DeviceRec) -> Target:
        """As ``to_device``, a device registered at another node sharing the database
        included (``pbx/shared_location.py``)."""
        await self.location.lookup(dev.sip_user)
        return self.to_device(dev)

    def to_device(self, dev: DeviceRec) -> Target:
        regs = self.location.bindings(dev.sip_user)
        if not regs:
            return Unroutable(480, "Temporarily Unavailable")
        return ToDevice(dev, regs[0], tuple(regs[:MAX_FORKS]))

    async def inbound(self, trunks: Sequence[TrunkRec], dialled: str) -> Inbound | None:
        """The call from one of ``trunks`` (all matching its source) to ``dialled``:
        the trunk of the app that owns the DID. None when the DID is unknown or belongs
        to an app none of these trunks serves — nobody's call."""
        try:
            did_number = numbers.normalize(dialled)
        except ValueError:
            return None
        did = await self.store.get_did(did_number)
        if did is None:
            return None
        trunk = next((t for t in trunks if t.app_id == did.app_id), None)
        if trunk is None:
            return None
        dev = await self.directory.get(did.sip_user, self.clock())
        if dev is None or dev.app_id != did.app_id:
            return Inbound(trunk, did_number, Unroutable(404, "Not Found"))
        return Inbound(trunk, did_number, await self.reach(dev))

    async def trunks_of(self, peer: Peer) -> list[TrunkRec]:
        """Every trunk a request from ``peer`` comes from (the module docstring's rule)."""
        host = bare_host(peer.host)
        return [
            t for t in await self.directory.trunks(None, self.clock())
            if t.transport.lower() == peer.transport and t.port == peer.port
            and bare_host(t.host) == host
        ]


def binding_peer(reg: Registration) -> Peer:
    """Where requests to a registered device go: the address its REGISTER came from,
    or the edge proxy its Path names first (``pbx/path.py``)."""
    return path.next_hop(reg.path, Peer(reg.transport, reg.source_host, reg.source_port))


def trunk_peer(trunk: TrunkRec) -> Peer:
    return Peer(trunk.transport, trunk.host, trunk.port)
