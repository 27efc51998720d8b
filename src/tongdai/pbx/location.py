"""The location service (RFC 3261 §10): where each device can be reached.

Bindings live in memory, which answers "is sipUser online?" and "where do I send
this INVITE?" without I/O. They are written behind to the store in batches (a
REGISTER storm would otherwise be a write storm) and restored at start-up, so an
unexpired registration survives a restart. Each device that gains its first binding
or loses its last publishes ``device.registered`` / ``device.unregistered``.

With ``shared`` (several nodes on one PostgreSQL), a device this node holds no
binding for is looked up in the shared table and the answer kept briefly
(``pbx/shared_location.py``): local bindings first, then other nodes' UDP bindings.

Every change of a binding is logged at info (``registration.added``, ``.removed``,
``.expired``; a plain refresh only at debug) with the user, contact, transport and
source, never credentials.
"""

from __future__ import annotations

import asyncio
import logging
import re

from tongdai import logs
from tongdai.background import stop_task
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus
from tongdai.clock import Clock
from tongdai.pbx.shared_location import SharedBindings, SharedRegistrations
from tongdai.store.protocol import Configuration, Registrations
from tongdai.store.records import Registration

log = logging.getLogger("tongdai.location")

# Seconds ``stop`` waits for device events still being published.
PUBLISH_WAIT = 2.0


class Location:
    def __init__(
        self, *, store: Registrations, devices: Configuration, bus: EventBus,
        wall_clock: Clock, flush_interval: float = 0.5,
        shared: SharedRegistrations | None = None, node: str = "",
        edges: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.store = store
        self.devices = devices
        self.bus = bus
        self.wall = wall_clock
        self.flush_interval = flush_interval
        self._bindings: dict[str, dict[str, Registration]] = {}
        self._apps: dict[str, str] = {}  # sip_user -> app_id, for events
        # (transport, host, port) a device registered from -> that device
        self._sources: dict[tuple[str, str, int], str] = {}
        self._dirty: dict[tuple[str, str], Registration | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._pending_events: list[Event] = []
        self._last_purge = 0.0
        self.node = node
        self.edges = edges  # (host, port) of edge proxies: their requests are devices'
        self.shared = (SharedBindings(shared, wall_clock=wall_clock)
                       if shared is not None else None)

    # Queries (no I/O) ----------------------------------------------------

    def bindings(self, sip_user: str) -> list[Registration]:
        """Unexpired bindings of the device, most recently refreshed first: this
        node's own, else (when shared) what another node's answer cached here holds,
        a stale answer being read again in the background."""
        regs = self.local_bindings(sip_user)
        if regs or self.shared is None:
            return regs
        remote, fresh = self.shared.cached(sip_user)
        if not fresh:
            self.shared.refresh_soon(sip_user, skip=self._gone_here)
        return remote

    def local_bindings(self, sip_user: str) -> list[Registration]:
        """The device's unexpired bindings registered at this node."""
        now = self.wall()
        regs = [r for r in self._bindings.get(sip_user, {}).values() if r.expires_at > now]
        regs.sort(key=lambda r: r.expires_at, reverse=True)
        return regs

    async def lookup(self, sip_user: str) -> list[Registration]:
        """As ``bindings``, but a device unknown here (or known from a stale answer)
        is read from the shared store before answering."""
        regs = self.local_bindings(sip_user)
        if regs or self.shared is None:
            return regs
        remote, fresh = self.shared.cached(sip_user)
        if fresh:
            return remote
        return await self.shared.fetch(sip_user, skip=self._gone_here)

    def is_registered(self, sip_user: str) -> bool:
        return bool(self.bindings(sip_user))

    def _gone_here(self, reg: Registration) -> bool:
        """A binding removed at this node whose row is not yet deleted."""
        key = (reg.sip_user, reg.contact)
        return key in self._dirty and self._dirty[key] is None

    def known_source(self, transport: str, host: str, port: int) -> bool:
        """Whether a device with a live binding registered from this address, or the
        address is an edge proxy's (its requests come from devices, RFC 3327)."""
        if (host, port) in self.edges:
            return True
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
            for reg in current.values():
                self._dirty[(sip_user, reg.contact)] = None
                _log_change("registration.removed", reg, app_id, now)
            current = {}
        for contact in remove:
            gone = current.pop(contact, None)
            if gone is not None:
                self._dirty[(sip_user, contact)] = None
                _log_change("registration.removed", gone, app_id, now)
        for reg in set_:
            old = current.get(reg.contact)
            moved = old is None or (old.transport, old.source_host, old.source_port) != (
                reg.transport, reg.source_host, reg.source_port)
            _log_change("registration.added" if moved else "registration.refreshed", reg,
                        app_id, now, level=logging.INFO if moved else logging.DEBUG)
            current[reg.contact] = reg
            self._dirty[(sip_user, reg.contact)] = reg
            self._sources[(reg.transport, reg.source_host, reg.source_port)] = sip_user
        if set_ and self.shared is not None:
            self.shared.forget(sip_user)
        if current:
            self._bindings[sip_user] = current
        else:
            self._bindings.pop(sip_user, None)
        self._apps[sip_user] = app_id
        online = bool(current)
        if online != was_online:
            self._emit(sip_user, app_id, online, now, current)
        return sorted(current.values(), key=lambda r: r.expires_at, reverse=True)

    def drop_source(self, transport: str, host: str, port: int) -> int:
        """Remove the bindings registered from this address; returns how many.

        For a websocket that closed: a server cannot open one to a browser (RFC 7118
        §5), so its bindings can never be reached again and the device is offline
        until it registers anew.
        """
        user = self._sources.pop((transport, host, port), None)
        if user is None:
            return 0
        gone = [c for c, r in self._bindings.get(user, {}).items()
                if (r.transport, r.source_host, r.source_port) == (transport, host, port)]
        app_id = self._apps.get(user)
        if not gone or app_id is None:
            return 0
        self.apply(sip_user=user, app_id=app_id, set_=[], remove=gone)
        return len(gone)

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
            task = asyncio.get_running_loop().create_task(self.bus.publish(ev))
            self._publishing.add(task)
            task.add_done_callback(self._published)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event publish failed: %s", task.exception())

    # Lifecycle -----------------------------------------------------------

    async def restore(self) -> int:
        """Load unexpired bindings from the store (after a restart)."""
        now = self.wall()
        # A websocket binding died with the process that held its connection: a server
        # cannot open one to a browser (RFC 7118 §5), so the device is offline until it
        # registers anew (its row goes when it expires).
        # With a node name, only this node's bindings: another node's are its own to
        # hold (and are found through the shared store when asked for).
        regs = [r for r in await self.store.load_registrations(
                    now, node=self.node or None)
                if r.transport not in ("ws", "wss")]
        for r in regs:
            self._bindings.setdefault(r.sip_user, {})[r.contact] = r
            self._sources[(r.transport, r.source_host, r.source_port)] = r.sip_user
        for sip_user in self._bindings:
            dev = await self.devices.get_device(sip_user)
            if dev is not None:
                self._apps[sip_user] = dev.app_id
        logs.event(log, "registrations.restored", count=len(regs))
        return len(regs)

    async def start(self) -> None:
        """Start sweeping expired bindings and writing changes behind."""
        self._task = asyncio.create_task(self._run(), name="location-sweeper")

    async def stop(self) -> None:
        """Stop sweeping, deliver the events already announced, write what is pending."""
        await stop_task(self._task)
        self._task = None
        if self.shared is not None:
            await self.shared.stop()
        self._publish_pending()
        if self._publishing:
            # Bounded: a bus that hangs must not hold up shutdown.
            _, late = await asyncio.wait(set(self._publishing), timeout=PUBLISH_WAIT)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
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
            for c, reg in current.items():
                if c not in alive:
                    self._dirty[(sip_user, c)] = None
                    _log_change("registration.expired", reg, self._apps.get(sip_user), now)
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
            await self.store.sync_registrations(upserts, deletes, node=self.node)
            now = self.wall()
            if now - self._last_purge > 60:
                self._last_purge = now
                await self.store.purge_registrations(now)
        except Exception:
            # Keep what failed for the next round, unless newer changes replaced it.
            for k, v in dirty.items():
                self._dirty.setdefault(k, v)
            raise


def _log_change(
    name: str, reg: Registration, app_id: str | None, now: float, *, level: int = logging.INFO,
) -> None:
    if not log.isEnabledFor(level):  # a refresh (debug) is the common case: build nothing
        return
    logs.event(
        log, name, level=level, user=reg.sip_user, app_id=app_id or "-",
        contact=loggable_contact(reg.contact), transport=reg.transport,
        source=f"{reg.source_host}:{reg.source_port}",
        expires=max(0, int(reg.expires_at - now)), user_agent=reg.user_agent,
    )


_URI_PARAMS = re.compile(r"[;?]")


def loggable_contact(contact: str) -> str:
    """The contact's address without its parameters, which may carry push tokens
    (RFC 8599 ``pn-prid``), and without a password in the userinfo (RFC 3261 §19.1.1
    still allows ``sip:user:password@host``)."""
    address = _URI_PARAMS.split(contact, maxsplit=1)[0]
    scheme, _, rest = address.partition(":")
    userinfo, at, hostport = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = userinfo.split(":", 1)[0] + "@" + hostport
    return f"{scheme}:{rest}"
