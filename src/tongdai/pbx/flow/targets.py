"""Who a flow's names ring: a device of the app (every binding), or a number out
through the app's trunks; ``None`` when it cannot be rung now (offline, no route)."""

from __future__ import annotations

from tongdai.pbx import dialplan as dp
from tongdai.pbx.b2bua.events import Binding, DialTrunk
from tongdai.pbx.b2bua.flow_events import Dialee
from tongdai.pbx.b2bua.routing import device_party, number_party
from tongdai.pbx.directory import DeviceDirectory


class Targets:
    def __init__(self, *, dialplan: dp.DialPlan, directory: DeviceDirectory) -> None:
        self.dialplan = dialplan
        self.directory = directory

    async def sip_user(self, app_id: str, name: str) -> str | None:
        """The sip_user of the app's device ``name`` (a sip_user or an extension)."""
        dev = await self.directory.find(app_id, name, self.dialplan.clock())
        return dev.sip_user if dev is not None else None

    async def device(self, app_id: str, name: str) -> Dialee | None:
        dev = await self.directory.find(app_id, name, self.dialplan.clock())
        if dev is None:
            return None
        target = await self.dialplan.reach(dev)
        if not isinstance(target, dp.ToDevice):
            return None  # offline
        regs = target.bindings or (target.binding,)
        return Dialee(name=dev.sip_user, party=device_party(dev), bindings=tuple(
            Binding(contact=r.contact, peer=dp.binding_peer(r), route=r.path) for r in regs))

    async def number(self, app_id: str, number: str) -> Dialee | None:
        target = await self.dialplan.route(app_id, number)
        if isinstance(target, dp.ToDevice):  # the number is a device's extension
            return await self.device(app_id, target.device.sip_user)
        if not isinstance(target, dp.ToTrunk):
            return None
        return Dialee(name=number, party=number_party(number),
                      trunk=DialTrunk(trunk=target.trunk, number=target.number))
