"""The brute-force throttle shared by SIP and the Open API, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from tongdai import logs
from tongdai.throttle import AuthThrottle

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"


def sip(**kw: int) -> AuthThrottle:
    limits = {"address_limit": 10, "limit": 10, "user_limit": 100} | kw
    return AuthThrottle(scope="sip", window=60, block=300, **limits)


def fail(t: AuthThrottle, host: str, user: str | None, now: float, times: int = 1) -> None:
    for _ in range(times):
        t.failure(host, user, now)


def test_a_stranger_blocks_himself_not_the_user() -> None:
    t = sip(address_limit=50)
    fail(t, A, "alice", 0.0, times=9)
    assert t.retry_after(A, "alice", 1.0) == 0  # nine: not yet
    fail(t, A, "alice", 1.0)
    assert t.retry_after(A, "alice", 2.0) == pytest.approx(299.0)
    assert t.retry_after(A, "bob", 2.0) == 0  # only alice, only from A
    assert t.retry_after(B, "alice", 2.0) == 0  # alice herself, elsewhere


def test_an_address_guessing_many_users_is_blocked_as_strongly_as_before() -> None:
    t = sip()
    for i in range(10):  # one guess per user: ten in all
        fail(t, A, f"user{i}", 0.0)
    assert t.retry_after(A, None, 1.0) > 0  # before any credentials are read
    assert t.retry_after(A, "someone-else", 1.0) > 0
    assert t.retry_after(B, "user0", 1.0) == 0


def test_a_block_lasts_its_whole_period_whatever_is_sent() -> None:
    t = sip()
    fail(t, A, "alice", 0.0, times=10)
    # Long after the counting window, failures keep arriving (a failed INVITE,
    # another REGISTER): none of them shortens the block ...
    for now in (61.0, 120.0, 250.0, 299.0):
        fail(t, A, "alice", now)
        assert t.retry_after(A, "alice", now) > 0
    # ... which ends on time, and counting starts again from zero.
    assert t.retry_after(A, "alice", 300.0) == 0
    fail(t, A, "alice", 300.0)
    assert t.retry_after(A, "alice", 300.5) == 0


def test_failures_outside_the_window_do_not_add_up() -> None:
    t = sip()
    fail(t, A, "alice", 0.0, times=9)
    fail(t, A, "alice", 61.0)
    assert t.retry_after(A, "alice", 61.0) == 0


def test_success_clears_the_pair_not_the_address() -> None:
    t = sip(address_limit=12)
    fail(t, A, "alice", 0.0, times=9)
    t.success(A, "alice")
    fail(t, A, "alice", 1.0, times=2)
    assert t.retry_after(A, "alice", 2.0) == 0  # alice's count restarted ...
    # ... but a tenant's own valid account does not launder the address's count.
    fail(t, A, "mallory-target", 2.0)
    assert t.retry_after(A, None, 3.0) > 0  # 9 + 2 + 1 = 12


def test_success_does_not_lift_a_block() -> None:
    t = sip()
    fail(t, A, "alice", 0.0, times=10)
    t.success(A, "alice")
    assert t.retry_after(A, "alice", 1.0) > 0


def test_a_distributed_guesser_is_slowed_and_the_user_never_locked_out() -> None:
    t = sip(user_limit=5)
    for i in range(5):  # five addresses, one guess each: alice is now under attack
        fail(t, f"198.51.100.{i}", "alice", 0.0)
    # A new address gets a single guess at alice before it is blocked for her ...
    fail(t, "198.51.100.99", "alice", 1.0)
    assert t.retry_after("198.51.100.99", "alice", 2.0) > 0
    assert t.retry_after("198.51.100.99", "bob", 2.0) == 0
    # ... while alice's own phones, which know the password, are never refused.
    assert t.retry_after(C, "alice", 2.0) == 0
    # Other users are counted as usual.
    fail(t, "198.51.100.99", "bob", 2.0)
    assert t.retry_after("198.51.100.99", "bob", 3.0) == 0
    # The attack state ends with the block period.
    fail(t, "198.51.100.98", "alice", 301.0)
    assert t.retry_after("198.51.100.98", "alice", 302.0) == 0


def test_a_distributed_attack_makes_a_few_log_lines_not_one_per_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tongdai.security")
    t = sip(user_limit=5)
    for i in range(5):
        fail(t, f"198.51.100.{i}", "alice", 0.0)
    for i in range(1000):  # a botnet: one guess each, then a retry each
        host = f"10.{i // 256}.{i % 256}.1"
        fail(t, host, "alice", 1.0)
        assert t.retry_after(host, "alice", 2.0) > 0
    assert t.retry_after(C, "alice", 3.0) == 0
    t.retry_after(C, None, 301.0)  # the attack period is over
    events = [(r.getMessage(), logs.fields_of(r)) for r in caplog.records]
    assert [name for name, _ in events] == ["auth.user_under_attack", "auth.user_attack_ended"]
    assert events[1][1]["blocked_addresses"] == 1000


def test_http_counts_addresses_only() -> None:
    t = AuthThrottle(scope="http", address_limit=20, window=60, block=300)
    fail(t, A, None, 0.0, times=19)
    assert t.retry_after(A, None, 0.0) == 0
    fail(t, A, None, 0.0)
    assert t.retry_after(A, None, 0.0) == pytest.approx(300.0)
    assert t.retry_after(B, None, 0.0) == 0


def test_memory_is_bounded() -> None:
    t = sip(address_limit=3, limit=3)
    t.max_keys = 100
    for i in range(10_000):
        t.failure(f"10.0.{i // 256}.{i % 256}", "u", float(i) / 1000)
    assert len(t) <= 300
    # Blocks are bounded too; the newest survive.
    for i in range(300):
        fail(t, f"10.9.{i // 256}.{i % 256}", None, 20.0, times=3)
    assert len(t._blocks) <= 100
    assert t.retry_after("10.9.1.43", None, 21.0) > 0


def test_blocks_and_refusals_are_logged_at_warning_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tongdai.security")
    t = sip()
    fail(t, A, "alice", 0.0, times=10)
    blocked = [r for r in caplog.records if r.getMessage() == "auth.blocked"]
    assert len(blocked) == 2  # the pair and the address, both at ten
    assert all(r.levelno == logging.WARNING for r in blocked)
    assert {logs.fields_of(r)["key"] for r in blocked} == {"address", "address_user"}
    pair = next(r for r in blocked if logs.fields_of(r)["key"] == "address_user")
    assert logs.fields_of(pair) == {"scope": "sip", "key": "address_user", "host": A,
                                    "user": "alice", "failures": 10, "seconds": 300}
    caplog.clear()
    for i in range(1000):  # a flood while blocked: logged once a minute, with a count
        t.retry_after(A, None, 1.0 + i * 0.1)
    refused = [logs.fields_of(r) for r in caplog.records if r.getMessage() == "auth.refused"]
    assert [f["refused"] for f in refused] == [1, 600]
    assert refused[0]["host"] == A and refused[0]["key"] == "address"


def test_long_usernames_are_cut_in_keys_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tongdai.security")
    t = sip(address_limit=1000)
    fail(t, A, "x" * 10_000, 0.0, times=10)
    assert t.retry_after(A, "x" * 64 + "different tail", 1.0) > 0
    assert all(len(str(logs.fields_of(r).get("user", ""))) <= 64 for r in caplog.records)
