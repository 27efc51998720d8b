"""Per-app request limits for the Open API: a token bucket per app.

Each app may make ``rate`` requests per second on average and ``burst`` at once. Only
requests that authenticated as the app are counted, so nobody can spend another
app's allowance by sending its app id with a wrong hash (those are the failure
throttle's business: ``tongdai/throttle.py``). A request over the limit is refused
with 429 ``app_rate_limited`` and a Retry-After of the whole seconds until a request
would be let through.

Counts live in memory, per process: with several tongdai processes behind a load
balancer each one allows the app ``rate``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from tongdai.api.errors import ApiError

# Apps whose buckets are kept; the least recently seen are forgotten first (a
# forgotten app starts again with a full bucket, which only errs towards allowing).
MAX_APPS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class AppRateLimit:
    """``take(app_id, now)`` counts one request of the app or raises the 429."""

    def __init__(self, *, rate: float, burst: int, max_apps: int = MAX_APPS) -> None:
        self.rate = rate
        self.burst = burst
        self.max_apps = max_apps
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, app_id: str, now: float) -> None:
        if not self.enabled:
            return
        b = self._refilled(app_id, now)
        if b.tokens < 1:
            wait = math.ceil((1 - b.tokens) / self.rate)
            raise ApiError(
                429, "app_rate_limited",
                f"This app made more than {self.burst} requests at once or "
                f"{self.rate:g} per second; retry after Retry-After seconds.",
                headers={"Retry-After": str(max(1, wait))},
            )
        b.tokens -= 1

    def _refilled(self, app_id: str, now: float) -> _Bucket:
        b = self._buckets.get(app_id)
        if b is None:
            b = self._buckets[app_id] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_apps:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(app_id)
            # A clock that stepped back adds nothing.
            b.tokens = min(float(self.burst), b.tokens + max(0.0, now - b.at) * self.rate)
            b.at = max(b.at, now)
        return b
