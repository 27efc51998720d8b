"""The bus interface that every backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from tongdai.bus.events import Event


class EventBus(Protocol):
    """Call ``start`` before use and ``close`` at the end; the owner (the server)
    does both, everyone else only publishes or subscribes."""

    async def start(self) -> None:
        """Connect (a shared bus) and begin delivering."""

    async def close(self) -> None:
        """Release what ``start`` took (a connection); idempotent."""

    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber; never blocks on a slow one."""

    def subscribe(self) -> AsyncIterator[Event]:
        """Iterate over every event published from now on."""
