"""A bus that lets metrics see what one publisher publishes.

The call layer publishes through it, so this node's calls are counted once, here:
a subscriber would also see other nodes' events on a shared (Redis) bus.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus


class ObservedBus:
    """Passes every event to ``observe`` (synchronously, cheaply), then publishes it."""

    def __init__(self, bus: EventBus, observe: Callable[[Event], None]) -> None:
        self._bus = bus
        self._observe = observe

    async def start(self) -> None:
        """Nothing: the bus underneath is started by its owner."""

    async def close(self) -> None:
        """Nothing: see ``start``."""

    async def publish(self, event: Event) -> None:
        with contextlib.suppress(Exception):  # a metric must never cost an event
            self._observe(event)
        await self._bus.publish(event)

    def subscribe(self) -> AsyncIterator[Event]:
        return self._bus.subscribe()
