"""The app event log: each app's events numbered 1, 2, 3, ... and kept for replay.

``append`` takes an event at once (publication order is numbering order) and a writer
task makes it durable in batches; listeners hear each batch once it is, so a live
subscriber never sees a number that a replay could not give back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tongdai.appstream.pending import Pending
from tongdai.appstream.record import AppRecord
from tongdai.background import stop_task
from tongdai.bus.events import Event

log = logging.getLogger("tongdai.appstream")

Listener = Callable[[Sequence[AppRecord]], None]


class AppLog(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None:
        """Write what was appended, then stop."""
    def append(self, event: Event) -> None:
        """Number ``event`` after every event appended before it; never blocks."""
    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every batch of records once durable, in order."""
    async def read(self, app_id: str, after: int, limit: int) -> Sequence[AppRecord]:
        """The retained records of ``app_id`` numbered above ``after``, in order."""
    async def bounds(self, app_id: str) -> tuple[int, int]:
        """(first retained, last given) numbers of ``app_id``."""


class AppEventStore(Protocol):
    async def append_app_events(self, events: Sequence[Event], *,
                                retain: int) -> list[AppRecord]: ...
    async def app_events_after(self, app_id: str, after: int,
                               limit: int) -> list[AppRecord]: ...
    async def app_event_bounds(self, app_id: str) -> tuple[int, int]: ...


class SqlAppLog:
    """The log in the store's database (the embedded default)."""

    def __init__(self, *, store: AppEventStore, retain: int) -> None:
        self._store = store
        self.retain = retain
        self._pending = Pending()
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        return self._pending.dropped

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self._pending.write_all(self._write, self._notify), name="app-event-log")

    async def stop(self) -> None:
        self._pending.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                await stop_task(self._task)
            self._task = None

    def append(self, event: Event) -> None:
        self._pending.append(event)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def flushed(self) -> None:
        """Return once everything appended so far is written (tests, benchmarks)."""
        await self._pending.flushed()

    async def read(self, app_id: str, after: int, limit: int) -> Sequence[AppRecord]:
        return await self._store.app_events_after(app_id, after, limit)

    async def bounds(self, app_id: str) -> tuple[int, int]:
        return await self._store.app_event_bounds(app_id)

    async def _write(self, batch: list[Event]) -> Sequence[AppRecord]:
        return await self._store.append_app_events(batch, retain=self.retain)

    def _notify(self, records: Sequence[AppRecord]) -> None:
        for listener in self._listeners:
            try:
                listener(records)
            except Exception:
                log.exception("app event listener failed")


def open_app_log(*, bus_url: str, store: AppEventStore, retain: int) -> AppLog:
    """The log for this deployment: Redis Streams when the bus is Redis (numbers
    agree between processes), else the store's database."""
    scheme = bus_url.partition("://")[0].lower() if "://" in bus_url else ""
    if scheme in ("redis", "rediss"):
        from tongdai.appstream.redis_log import RedisAppLog
        return RedisAppLog.from_url(bus_url, retain=retain)
    return SqlAppLog(store=store, retain=retain)
