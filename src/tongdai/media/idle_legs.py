"""Relay legs of ended calls, kept open for the next calls.

Opening a leg costs two sockets, two binds and two asyncio endpoints, and closing it
as much again: four sockets per call. A leg whose call ended is parked here instead,
still bound, and handed to a later call first in, first out.

Packets of the ended call may still arrive (a device that has not yet taken the BYE):
a parked leg forwards nothing, and it is handed out again only after ``quarantine``
seconds parked — the same guard as a port given back to the end of the range's queue
— and with its latching reset, so the next call learns its device afresh. When the
range is used up, a leg still in quarantine is better than refusing the call.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["IdleLegs"]

L = TypeVar("L")


class IdleLegs(Generic[L]):
    """At most ``capacity`` parked legs, oldest first."""

    def __init__(self, *, quarantine: float, capacity: int) -> None:
        self.quarantine = quarantine
        self.capacity = capacity
        self._parked: deque[tuple[float, L]] = deque()

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, leg: L, now: float) -> bool:
        """Keep ``leg``; False when full (the caller closes it)."""
        if len(self._parked) >= self.capacity:
            return False
        self._parked.append((now, leg))
        return True

    def take(self, now: float, *, in_quarantine: bool = False) -> L | None:
        """The oldest parked leg once out of quarantine (or, with ``in_quarantine``,
        whatever its age), else None."""
        if not self._parked:
            return None
        parked_at, leg = self._parked[0]
        if not in_quarantine and now - parked_at < self.quarantine:
            return None
        self._parked.popleft()
        return leg

    def drain(self) -> list[L]:
        """Every parked leg, forgotten here (to be closed)."""
        legs = [leg for _, leg in self._parked]
        self._parked.clear()
        return legs
