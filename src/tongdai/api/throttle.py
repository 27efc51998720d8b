"""Throttle repeated failed authentication per client address.

An app hash or a device password can be guessed only by trying; after ``limit``
failures within ``window`` seconds an address is refused (429) for ``block`` seconds,
correct credentials included, so a guesser learns nothing while blocked. Memory is
bounded: past ``max_keys`` addresses the least recently failing are forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int
    window_start: float
    blocked_until: float


class AuthThrottle:
    def __init__(
        self, *, limit: int = 20, window: float = 60.0, block: float = 300.0,
        max_keys: int = 65_536,
    ) -> None:
        self.limit = limit
        self.window = window
        self.block = block
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it is not blocked."""
        e = self._entries.get(key)
        if e is None or e.blocked_until <= now:
            return 0.0
        return e.blocked_until - now

    def failure(self, key: str, now: float) -> None:
        """Count one failed authentication from ``key``."""
        e = self._entries.get(key)
        if e is None or (now - e.window_start > self.window and e.blocked_until <= now):
            e = _Entry(failures=0, window_start=now, blocked_until=0.0)
            self._entries[key] = e
        e.failures += 1
        self._entries.move_to_end(key)
        if e.failures >= self.limit:
            e.blocked_until = now + self.block
            # A fresh count starts once the block ends.
            e.failures = 0
            e.window_start = e.blocked_until
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)
