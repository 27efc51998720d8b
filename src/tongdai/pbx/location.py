"""The location service (RFC 3261 §10): where each device can be reached.

Bindings live in memory, which answers "is sipUser online?" and "where do I send
this INVITE?" without I/O. They are written behind to the store in batches (a
REGISTER storm would otherwise be a write storm) and restored at start-up, so an
unexpired registration survives a restart. Each device that gains its first binding
or loses its last publishes ``device.registered`` / ``device.unregistered``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tongdai.background import stop_task
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus
from tongdai.store.protocol import Store
from tongdai.store.records import Registration

log = logging.getLogger("tongdai.location")


class Location:
    def __init__(
        self, *, store: Store, bus: EventBus, wall_clock: Callable[[], float],
        flush_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.bus = bus
        self.wall = wall_clock
        self.flush_interval = flush_interval
        self._bindings: dict[str, dict[str, Registration]] = {}
        self._apps: dict[str, str] = {}  # sip_user -> app_id, for events
        # (transport, host, port) a device registered from -> that device
        self._sources: dict[tuple[str, str, int], str] = {}
        self._dirty: dict[tuple[str, str], Registration | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending_events: list[Event] = []
        self._last_purge = 0.0

    # Queries (no I/O) ----------------------------------------------------

    def bindings(self, sip_user: str) -> list[Registration]:
        """Unexpired bindings of the device, most recently refreshed first."""
        now = self.wall()
        regs = [r for r in self._bindings.get(sip_user, {}).values() if r.expires_at > now]
        regs.sort(key=lambda r: r.expires_at, reverse=True)
        return regs

    def is_registered(self, sip_user: str) -> bool:
        now = self.wall()
        return any(r.expires_at > now for r in self._bindings.get(sip_user, {}).values())

    def known_source(self, transport: str, host: str, port: int) -> bool:
        """Whether a device with a live binding registered from this address."""
        user = self._sources.get((transport, host, port))
        if user is None:
            return False
        return any(
            r.source_host == host and r.source_port == port and r.transport == transport
            for r in self.bindings(user)
        )

    def count(self) -> int:
        return sum(len(b) for b in self._bindings.values())

    # Updates -------------------------------------------------------------

    def apply(
        self, *, sip_user: str, app_id: str, set_: list[Registration], remove: list[str],
        remove_all: bool = False,
    ) -> list[Registration]:
        """Change the device's bindings; returns its current ones."""
        now = self.wall()
        current = self._bindings.get(sip_user, {})
        was_online = any(r.expires_at > now for r in current.values())
        current = {c: r for c, r in current.items() if r.expires_at > now}
        if remove_all:
            for contact in current:
                self._dirty[(sip_user, contact)] = None
            current = {}
        for contact in remove:
            if current.pop(contact, None) is not None:
                self._dirty[(sip_user, contact)] = None
        for reg in set_:
            current[reg.contact] = reg
            self._dirty[(sip_user, reg.contact)] = reg
            self._sources[(reg.transport, reg.source_host, reg.source_port)] = sip_user
        if current:
            self._bindings[sip_user] = current
        else:
            self._bindings.pop(sip_user, None)
        self._apps[sip_user] = app_id
        online = bool(current)
        if online != was_online:
            self._emit(sip_user, app_id, online, now, current)
        return sorted(current.values(), key=lambda r: r.expires_at, reverse=True)

    def _emit(
        self, sip_user: str, app_id: str, online: bool, now: float,
        current: dict[str, Registration],
    ) -> None:
        data: dict[str, object] = {"sip_user": sip_user}
        if online:
            first = next(iter(current.values()))
            data.update(transport=first.transport, user_agent=first.user_agent)
        ev = Event(
            type="device.registered" if online else "device.unregistered",
            app_id=app_id, sip_users=(sip_user,), ts=now, data=data,
        )
        self._pending_events.append(ev)
        if self._task is not None:
            asyncio.get_running_loop().call_soon(self._publish_pending)

    def _publish_pending(self) -> None:
        events, self._pending_events = self._pending_events, []
        for ev in events:
            task = asyncio.ensure_future(self.bus.publish(ev))
            task.add_done_callback(_log_failure)

    # Lifecycle -----------------------------------------------------------

    async def restore(self) -> int:
        """Load unexpired bindings from the store (after a restart)."""
        now = self.wall()
        regs = await self.store.load_registrations(now)
        for r in regs:
            self._bindings.setdefault(r.sip_user, {})[r.contact] = r
            self._sources[(r.transport, r.source_host, r.source_port)] = r.sip_user
        for sip_user in self._bindings:
            dev = await self.store.get_device(sip_user)
            if dev is not None:
                self._apps[sip_user] = dev.app_id
        log.info("restored %d registrations", len(regs))
        return len(regs)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="location-sweeper")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.sweep()
                self._publish_pending()
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("location flush failed; will retry")

    def sweep(self) -> None:
        """Drop expired bindings, announcing devices that went offline."""
        now = self.wall()
        for sip_user in list(self._bindings):
            current = self._bindings[sip_user]
            alive = {c: r for c, r in current.items() if r.expires_at > now}
            if len(alive) == len(current):
                continue
            for c in current:
                if c not in alive:
                    self._dirty[(sip_user, c)] = None
            for r in current.values():
                if r.contact not in alive:
                    key = (r.transport, r.source_host, r.source_port)
                    if self._sources.get(key) == sip_user:
                        del self._sources[key]
            if alive:
                self._bindings[sip_user] = alive
            else:
                del self._bindings[sip_user]
                app_id = self._apps.get(sip_user)
                if app_id is not None:
                    self._emit(sip_user, app_id, False, now, alive)

    async def flush(self) -> None:
        """Write pending binding changes to the store."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        try:
            upserts = [reg for reg in dirty.values() if reg is not None]
            deletes = [key for key, reg in dirty.items() if reg is None]
            await self.store.sync_registrations(upserts, deletes)
            now = self.wall()
            if now - self._last_purge > 60:
                self._last_purge = now
                await self.store.purge_registrations(now)
        except Exception:
            # Keep what failed for the next round, unless newer changes replaced it.
            for k, v in dirty.items():
                self._dirty.setdefault(k, v)
            raise


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("event publish failed: %s", task.exception())
