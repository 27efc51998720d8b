"""How long an endpoint rests after a failed attempt: exponential, bounded, jittered."""

from __future__ import annotations

import random


def retry_delay(failures: int, *, base: float, cap: float,
                rand: random.Random | None = None) -> float:
    """Seconds to wait after the ``failures``-th failure in a row (1 for the first).

    ``base * 2**(failures-1)``, at most ``cap``, then "equal jitter": between half and
    all of it, so endpoints that failed together (a receiver that came back) are not
    all retried in the same instant, yet none is retried sooner than half its delay.
    """
    if failures < 1:
        return 0.0
    # min() before the power would overflow a float after ~1,000 failures.
    delay = base * 2.0 ** min(failures - 1, 62)
    delay = min(cap, delay)
    r = (rand or random).random()
    return delay / 2 + delay / 2 * r
