"""Every event published goes into the app event log first."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tongdai.appstream.log import AppLog
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus


class AppLogBus:
    """A bus whose ``publish`` hands the event to the log (at once: publication order is
    numbering order), then to the bus underneath. Each process logs only what it
    publishes itself, so with a shared bus an event is numbered once."""

    def __init__(self, bus: EventBus, log: AppLog) -> None:
        self._bus = bus
        self._log = log

    async def start(self) -> None:
        """Nothing: the server starts and closes the bus underneath itself."""

    async def close(self) -> None:
        """Nothing: see ``start``."""

    async def publish(self, event: Event) -> None:
        self._log.append(event)
        await self._bus.publish(event)

    def subscribe(self) -> AsyncIterator[Event]:
        return self._bus.subscribe()
