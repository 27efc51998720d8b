"""Bindings held by other tongdai nodes, read from the shared database on a local miss.

Several nodes on one PostgreSQL each keep their own devices' bindings in memory
(``pbx/location.py``) and write them behind to the ``registrations`` table. When a
node is asked about a device it holds no binding for, it reads that device's rows
from the table and keeps the answer for ``ttl`` seconds (a short cache: a device that
unregisters at another node is seen offline here within ``ttl`` plus that node's
write-behind delay). A binding learnt this way still lapses at its own expiry.

A binding registered through an edge proxy (with a Path, RFC 3327, ``pbx/path.py``)
is reachable from every node: the INVITE goes to the edge, which holds the device's
connection. Without a Path, only UDP bindings are: this node sends the INVITE from
its own SIP socket straight to the address the REGISTER came from. A TCP, TLS or
websocket binding without a Path is a connection the other node holds, which this
node cannot open or use; such a device is offline from here (logged as
``registration.elsewhere``; see docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tongdai import logs
from tongdai.clock import Clock
from tongdai.store.records import Registration

log = logging.getLogger("tongdai.location")

# Seconds a device's bindings read from the shared store are answered from memory.
SHARED_TTL = 2.0
# Devices whose shared answer is kept; the oldest answers go first beyond this.
SHARED_ENTRIES = 20_000
# Background reads in flight at most: a sweep of synchronous queries over many
# devices unknown here (a presence page of offline devices) must not become a burst
# of reads; a query left out starts its read on a later ask.
BACKGROUND_READS = 16
# Transports another node's binding (without a Path) can be reached over from here.
REACHABLE = frozenset({"udp"})


class SharedRegistrations(Protocol):
    async def registrations_of(self, sip_user: str, now: float) -> Sequence[Registration]:
        """The device's bindings unexpired at ``now``, latest expiry first."""


class SharedBindings:
    """A short cache over the shared ``registrations`` table, one device at a time."""

    def __init__(
        self, store: SharedRegistrations, *, wall_clock: Clock, ttl: float = SHARED_TTL,
        max_entries: int = SHARED_ENTRIES,
    ) -> None:
        self.store = store
        self.wall = wall_clock
        self.ttl = ttl
        self.max_entries = max_entries
        # sip_user -> (when read, its reachable bindings)
        self._cache: dict[str, tuple[float, tuple[Registration, ...]]] = {}
        self._fetching: dict[str, asyncio.Task[tuple[Registration, ...]]] = {}
        self._told: set[tuple[str, str]] = set()  # (sip_user, contact) logged as elsewhere

    def cached(self, sip_user: str) -> tuple[list[Registration], bool]:
        """The device's cached bindings still unexpired, and whether the answer is
        fresh (read less than ``ttl`` ago). An answer older than twice ``ttl`` is no
        answer: ``([], False)``."""
        now = self.wall()
        entry = self._cache.get(sip_user)
        if entry is None:
            return [], False
        read_at, regs = entry
        age = now - read_at
        if age >= 2 * self.ttl:
            return [], False
        return [r for r in regs if r.expires_at > now], age < self.ttl

    async def fetch(
        self, sip_user: str, *, skip: Callable[[Registration], bool] | None = None,
    ) -> list[Registration]:
        """Read the device's bindings from the shared store (one read at a time per
        device) and cache them. ``skip`` leaves out bindings this node knows are gone
        but has not yet written behind."""
        self._start(sip_user, skip)
        task = self._fetching.get(sip_user)
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # logged once by the task's own callback; answer what is cached
        return self.cached(sip_user)[0]

    def refresh_soon(
        self, sip_user: str, *, skip: Callable[[Registration], bool] | None = None,
    ) -> None:
        """Start reading the device's bindings in the background (for callers that
        cannot wait); nothing without a running event loop, or while
        ``BACKGROUND_READS`` reads are in flight."""
        if len(self._fetching) >= BACKGROUND_READS:
            return
        self._start(sip_user, skip)

    def _start(self, sip_user: str, skip: Callable[[Registration], bool] | None) -> None:
        if sip_user in self._fetching:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._read(sip_user, skip))
        self._fetching[sip_user] = task
        task.add_done_callback(self._background_done(sip_user))

    def _background_done(
        self, sip_user: str,
    ) -> Callable[[asyncio.Task[tuple[Registration, ...]]], None]:
        def done(task: asyncio.Task[tuple[Registration, ...]]) -> None:
            self._fetching.pop(sip_user, None)
            if not task.cancelled() and task.exception() is not None:
                logs.event(log, "registration.shared_read_failed", level=logging.WARNING,
                           user=sip_user, error=str(task.exception()))
        return done

    def forget(self, sip_user: str) -> None:
        """Drop the cached answer (the device registered at this node)."""
        self._cache.pop(sip_user, None)

    def clear(self) -> None:
        self._cache.clear()

    async def stop(self) -> None:
        tasks = list(self._fetching.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _read(
        self, sip_user: str, skip: Callable[[Registration], bool] | None,
    ) -> tuple[Registration, ...]:
        now = self.wall()
        rows = await self.store.registrations_of(sip_user, now)
        usable: list[Registration] = []
        for r in rows:
            if skip is not None and skip(r):
                continue
            if r.transport not in REACHABLE and not r.path:
                self._elsewhere(r, now)
                continue
            usable.append(r)
        regs = tuple(usable)
        self._cache.pop(sip_user, None)
        self._cache[sip_user] = (now, regs)
        while len(self._cache) > self.max_entries:
            del self._cache[next(iter(self._cache))]
        return regs

    def _elsewhere(self, reg: Registration, now: float) -> None:
        key = (reg.sip_user, reg.contact)
        if key in self._told:
            return
        if len(self._told) > self.max_entries:
            self._told.clear()
        self._told.add(key)
        logs.event(
            log, "registration.elsewhere", user=reg.sip_user, transport=reg.transport,
            source=f"{reg.source_host}:{reg.source_port}",
            expires=max(0, int(reg.expires_at - now)),
            reason="the connection is held by another node; unreachable from this node "
                   "until requests go through an edge proxy (Path)",
        )
