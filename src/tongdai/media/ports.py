"""The RTP port range, handed out as (even RTP, odd RTCP) pairs.

RFC 3550 §11: RTP uses an even port and RTCP the next odd one; RFC 4566 §5.14 lets
SDP name just the RTP port and implies RTCP at port + 1. Freed pairs go to the back
of the queue so a port is reused as late as possible, and stray packets of an ended
call are unlikely to reach the next one.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool"]


class PortPool:
    """Even ports ``p`` with ``lo <= p`` and ``p + 1 <= hi``; RTCP is ``p + 1``."""

    def __init__(self, lo: int, hi: int) -> None:
        if not 0 < lo < hi <= 65535:
            raise ValueError(f"bad RTP port range {lo}-{hi}")
        self.lo, self.hi = lo, hi
        self._free: deque[int] = deque(range(lo + (lo & 1), hi, 2))
        self.size = len(self._free)
        self._used: set[int] = set()

    @property
    def free(self) -> int:
        return len(self._free)

    def take(self) -> int | None:
        """The RTP port of a free pair, or None when the range is used up."""
        if not self._free:
            return None
        port = self._free.popleft()
        self._used.add(port)
        return port

    def give_back(self, port: int) -> None:
        """Return a pair; it is handed out again after every other free pair."""
        if port not in self._used:
            raise ValueError(f"port {port} was not taken from this pool")
        self._used.remove(port)
        self._free.append(port)
