"""Bus lag: how long after an event happened this node's subscribers receive it.

It covers the webhook outbox write an event may wait for, the trip through Redis on
a shared bus, and other nodes' events (whose times come from their clocks: keep
them in NTP sync; a negative difference counts as 0).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from prometheus_client import Histogram

from tongdai.background import stop_task
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus


class BusLag:
    """Subscribes to ``bus`` and observes each event's lag into ``histogram``."""

    def __init__(self, *, bus: EventBus, histogram: Histogram,
                 wall_clock: Callable[[], float]) -> None:
        self._bus = bus
        self._histogram = histogram
        self._wall = wall_clock
        self._stream: AsyncIterator[Event] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._stream = self._bus.subscribe()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._stream), name="bus-lag")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()
        self._stream = None

    async def _run(self, stream: AsyncIterator[Event]) -> None:
        observe, wall = self._histogram.observe, self._wall
        async for event in stream:
            with contextlib.suppress(TypeError):  # a foreign publisher's odd ts
                observe(max(0.0, wall() - event.ts))
