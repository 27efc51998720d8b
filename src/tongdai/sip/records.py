"""Answered transactions kept as records: what is left of a transaction once its only
work is to repeat something until a timer ends it.

A non-INVITE server transaction over UDP in Completed repeats its final response for
Timer J (RFC 3261 §17.2.2); an INVITE server transaction answered 2xx and ACKed
repeats the 2xx for Timer L (RFC 6026 §7.1); an INVITE client transaction whose 2xx
the TU has ACKed repeats that ACK for Timer M. A busy endpoint holds hundreds of
thousands of them. As transaction objects each would keep its parsed request alive
(about seven objects for the garbage collector to walk, over and over, for 32 s); as
records they are bytes, strings and numbers the collector does not track.

``Records`` maps a transaction key to its record and keeps the records' ends in a heap:
the soonest to end is the first to expire, and the first to go when the endpoint's
table is full.
"""

from __future__ import annotations

import heapq
from typing import TypeVar

V = TypeVar("V")

__all__ = ["Records"]


class Records(dict[str, V]):
    """Records by transaction key (a dict: lookups stay in C on the message path),
    each until its end."""

    __slots__ = ("_ends",)

    def __init__(self) -> None:
        super().__init__()
        self._ends: list[tuple[float, str]] = []

    def add(self, key: str, record: V, until: float) -> None:
        """Keep ``record`` for ``key`` until ``until`` (a key not kept already). A kept
        key's record may change later by assignment; its end does not."""
        self[key] = record
        heapq.heappush(self._ends, (until, key))

    def next_end(self) -> float | None:
        return self._ends[0][0] if self._ends else None

    def expire(self, now: float) -> None:
        """Forget every record whose end has come."""
        ends = self._ends
        while ends and ends[0][0] <= now:
            del self[heapq.heappop(ends)[1]]

    def drop_soonest(self) -> bool:
        """Forget the record nearest its end; False when there is none."""
        if not self._ends:
            return False
        del self[heapq.heappop(self._ends)[1]]
        return True
