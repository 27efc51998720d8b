"""The RFC 3261 durations are named once and every timer derives from them."""

from __future__ import annotations

import pytest

from tongdai.sip.transaction import TIMEOUT_T1_MULTIPLE, TIMER_D_MIN, Input, TimerConfig


@pytest.mark.parametrize("t1", [0.1, 0.5, 1.0])
def test_timeouts_are_64_t1_and_timer_d_at_least_32_s(t1: float) -> None:
    cfg = TimerConfig(t1=t1)
    assert TIMEOUT_T1_MULTIPLE == 64 and TIMER_D_MIN == 32.0  # RFC 3261 §17.1.1.2
    for timer in (Input.TIMER_B, Input.TIMER_F, Input.TIMER_H, Input.TIMER_L, Input.TIMER_M):
        assert cfg.duration(timer, reliable=False) == 64 * t1
    assert cfg.duration(Input.TIMER_J, reliable=False) == 64 * t1
    assert cfg.duration(Input.TIMER_D, reliable=False) == max(32.0, 64 * t1)
    assert cfg.duration(Input.TIMER_D, reliable=True) == 0.0
