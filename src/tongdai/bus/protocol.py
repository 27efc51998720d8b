"""The bus interface that every backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from tongdai.bus.events import Event


class EventBus(Protocol):
    async def publish(self, event: Event) -> None:
        """Deliver ``event`` to every current subscriber; never blocks on a slow one."""

    def subscribe(self) -> AsyncIterator[Event]:
        """Iterate over every event published from now on."""
