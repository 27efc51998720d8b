"""The embedded in-process bus: one unbounded queue per subscriber, no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from tongdai.bus.events import Event


class Subscription:
    """An async iterator over events; close it (or leave its ``async with``) to stop.

    Shared by every bus backend: the bus puts events in with ``_put`` and is told of
    the close through ``on_close``.
    """

    def __init__(self, on_close: Callable[[Any], None]) -> None:
        self._on_close = on_close
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def _put(self, event: Event) -> None:
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
        self._on_close(self)

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
            sub._put(event)

    def subscribe(self) -> Subscription:
        sub = Subscription(self._subs.discard)
        self._subs.add(sub)
        return sub

    def stream(self) -> AsyncIterator[Event]:
        return self.subscribe()
