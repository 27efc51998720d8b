"""Dialogs of calls that just ended, remembered by key alone.

A BYE can cross ours: the peer hung up as we did. RFC 3261 §15.1.1 ends the peer's
dialog on any final response, but a 200 says what happened where 481 says "no such
call". So for a short while after a call is over its dialog keys stay known, and a
BYE in one of them gets 200. Only the keys are kept (tuples of strings: nothing for
the garbage collector to walk), never the call: repeats of requests and responses
are answered by the transaction layer on its own (``tongdai.sip.records``).
"""

from __future__ import annotations

from collections import deque

__all__ = ["EndedDialogs"]

DialogKey = tuple[str, str, str]


class EndedDialogs:
    """Dialog keys, each known until its time is up (one duration for all)."""

    __slots__ = ("_order", "_until", "linger")

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._until: dict[DialogKey, float] = {}
        self._order: deque[tuple[float, DialogKey]] = deque()

    def __len__(self) -> int:
        return len(self._until)

    def add(self, key: DialogKey, now: float) -> None:
        self.expire(now)
        until = now + self.linger
        self._until[key] = until
        self._order.append((until, key))

    def known(self, key: DialogKey, now: float) -> bool:
        until = self._until.get(key)
        return until is not None and until > now

    def expire(self, now: float) -> None:
        order, until = self._order, self._until
        while order and order[0][0] <= now:
            end, key = order.popleft()
            if until.get(key) == end:  # not renewed since
                del until[key]
