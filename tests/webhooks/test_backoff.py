"""The rest after a failure: exponential, capped, jittered, never zero."""

from __future__ import annotations

import random

from tongdai.webhooks.backoff import retry_delay


def test_delays_double_then_stop_at_the_cap() -> None:
    low = random.Random(0)
    highs = [retry_delay(n, base=1.0, cap=600.0, rand=_Fixed(1.0)) for n in range(1, 13)]
    assert highs[:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert highs[10:] == [600, 600]
    for n in range(1, 40):
        d = retry_delay(n, base=1.0, cap=600.0, rand=low)
        full = min(600.0, 2.0 ** (n - 1))
        assert full / 2 <= d <= full


def test_jitter_spreads_endpoints_that_failed_together() -> None:
    delays = {retry_delay(5, base=1.0, cap=600.0) for _ in range(50)}
    assert len(delays) > 40


def test_no_failure_no_wait_and_no_overflow_after_many() -> None:
    assert retry_delay(0, base=1.0, cap=600.0) == 0.0
    assert retry_delay(100_000, base=1.0, cap=600.0, rand=_Fixed(1.0)) == 600.0


def test_an_hour_outage_costs_a_bounded_number_of_attempts() -> None:
    """With the defaults an endpoint is tried again at least every 10 minutes, and
    an hour of failures stays far below the 100 that disable it."""
    t, n = 0.0, 0
    while t < 3600:
        n += 1
        t += retry_delay(n, base=1.0, cap=600.0, rand=_Fixed(0.0))
    assert n < 30


class _Fixed(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value
