"""An app's devices with their live bindings, for the presence endpoint.

Bindings are what the location service wrote behind (about a second late at most,
``pbx/location.py``), so every tongdai process sharing the database sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from tongdai.store.engine import Database
from tongdai.store.models import Device, RegistrationRow
from tongdai.store.records import Registration
from tongdai.store.registrations import _reg_rec


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceBindings:
    """A device of an app and its unexpired bindings, latest expiry first."""

    sip_user: str
    display_name: str = ""
    extension: str | None = None
    bindings: tuple[Registration, ...] = ()


class Presence(Protocol):
    async def device_bindings(self, app_id: str, now: float) -> Sequence[DeviceBindings]:
        """Every device of the app, by sip_user, with its bindings unexpired at ``now``."""


class PresenceQueries(Database):
    """``Presence`` on the relational store; ``SqlStore`` inherits it."""

    async def device_bindings(self, app_id: str, now: float) -> Sequence[DeviceBindings]:
        async with self._read() as s:
            devices = (await s.execute(
                select(Device.sip_user, Device.display_name, Device.extension)
                .where(Device.app_id == app_id).order_by(Device.sip_user)
            )).all()
            regs = await s.scalars(
                select(RegistrationRow)
                .join(Device, Device.sip_user == RegistrationRow.sip_user)
                .where(Device.app_id == app_id, RegistrationRow.expires_at > now)
                .order_by(RegistrationRow.expires_at.desc())
            )
            by_user: dict[str, list[Registration]] = {}
            for r in regs:
                by_user.setdefault(r.sip_user, []).append(_reg_rec(r))
        return [DeviceBindings(sip_user=d.sip_user, display_name=d.display_name,
                               extension=d.extension, bindings=tuple(by_user.get(d.sip_user, ())))
                for d in devices]
