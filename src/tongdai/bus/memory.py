"""The embedded in-process bus: one unbounded queue per subscriber, no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType

from tongdai.bus.events import Event


class Subscription:
    """An async iterator over events; close it (or leave its ``async with``) to stop."""

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def _deliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subs.discard(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class InProcessBus:
    """Publishes to subscribers of the same process, in order."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    async def start(self) -> None:
        """Nothing to connect; here so callers treat every backend alike."""

    async def close(self) -> None:
        """Nothing to release; subscriptions stay usable, as with every backend."""

    async def publish(self, event: Event) -> None:
        for sub in tuple(self._subs):
            sub._deliver(event)

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subs.add(sub)
        return sub

    def stream(self) -> AsyncIterator[Event]:
        return self.subscribe()
