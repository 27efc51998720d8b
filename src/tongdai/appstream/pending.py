"""The events an app event log took and has not yet made durable, and the writer loop
that makes them so in batches, in order, retrying while the backend is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tongdai import logs
from tongdai.bus.events import Event

log = logging.getLogger("tongdai.appstream")

BATCH = 1000
# Events waiting for the log beyond this are dropped (counted and logged): an
# unreachable database must not grow the PBX's memory without bound.
MAX_PENDING = 100_000

R = TypeVar("R")


class Pending:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False
        self.dropped = 0

    def append(self, event: Event) -> None:
        """Queue ``event`` (one of an app) behind every event queued before it."""
        if not event.app_id:
            return
        if len(self.events) >= MAX_PENDING:
            self.dropped += 1
            return
        self.events.append(event)
        self._idle.clear()
        self._wake.set()

    def stop(self) -> None:
        """Let the writer return once what is queued is written (or given up)."""
        self.stopping = True
        self._wake.set()

    async def flushed(self) -> None:
        """Return once everything queued so far is written."""
        await self._idle.wait()

    async def write_all(self, write: Callable[[list[Event]], Awaitable[R]],
                        written: Callable[[R], None]) -> None:
        """Hand queued events to ``write`` in batches, in order, until stopped; a batch
        leaves the queue only once written, then ``written`` gets what it returned."""
        failures = 0
        while True:
            if not self.events:
                self._idle.set()
                if self.stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self.events[:BATCH]
            try:
                result = await write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The backend is away: the events wait (in order) and are tried again.
                failures += 1
                if failures == 1:
                    logs.event(log, "app_events.write_failed", level=logging.WARNING,
                               pending=len(self.events), error=type(exc).__name__)
                if self.stopping and failures >= 3:
                    logs.event(log, "app_events.lost", level=logging.ERROR,
                               count=len(self.events))
                    self.events.clear()
                    continue
                await asyncio.sleep(min(2.0, 0.05 * 2 ** failures))
                continue
            if failures:
                logs.event(log, "app_events.write_resumed", level=logging.INFO)
                failures = 0
            del self.events[:len(batch)]
            written(result)
