"""Brute-force protection: count authentication failures per key, block for a while.

SIP scanners try thousands of passwords against every public PBX; after ``limit``
failures within ``window`` seconds a key (a source address, or a username) is blocked
for ``block`` seconds. Memory is bounded: the oldest keys are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict


class FailureThrottle:
    def __init__(self, *, limit: int, window: float, block: float, max_keys: int = 100_000):
        self.limit = limit
        self.window = window
        self.block = block
        self.max_keys = max_keys
        # key -> [failures, window start, blocked until]
        self._state: OrderedDict[str, list[float]] = OrderedDict()

    def blocked(self, key: str, now: float) -> bool:
        st = self._state.get(key)
        return st is not None and st[2] > now

    def failure(self, key: str, now: float) -> bool:
        """Count one failure; True if the key is now blocked."""
        st = self._state.get(key)
        if st is None or now - st[1] > self.window:
            st = [0.0, now, 0.0]
            self._state[key] = st
        st[0] += 1
        self._state.move_to_end(key)
        if st[0] >= self.limit:
            st[2] = now + self.block
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return st[2] > now

    def fail_auth(self, host: str, user: str, now: float) -> None:
        """One failed authentication: it counts against the address and the username."""
        self.failure(host, now)
        self.failure("user:" + user, now)

    def user_blocked(self, user: str, now: float) -> bool:
        return self.blocked("user:" + user, now)

    def success(self, key: str) -> None:
        st = self._state.get(key)
        if st is not None and st[2] == 0.0:
            del self._state[key]
