"""The app event logs: numbering that survives a reopen (database) and agrees between
processes (two logs on one Redis), replay bounds, and the order the bus hands events in."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Sequence

import pytest
from tests.store.support import STORE_KEY

from tongdai.appstream import AppLogBus, AppRecord, SqlAppLog
from tongdai.appstream.redis_log import RedisAppLog
from tongdai.bus import Event, InProcessBus
from tongdai.store.sql import open_store

REDIS_URL = os.environ.get("TONGDAI_TEST_REDIS", "redis://127.0.0.1:6379/0")


def ev(app_id: str, n: int, kind: str = "call.ringing") -> Event:
    return Event(type=kind, app_id=app_id, sip_users=("alice",), ts=float(n), data={"n": n})


async def test_numbers_continue_after_the_database_is_reopened(db_url: str) -> None:
    heard: list[AppRecord] = []
    for round_ in range(2):
        store = await open_store(db_url, key=STORE_KEY)
        log = SqlAppLog(store=store, retain=1000)
        log.listen(heard.extend)
        await log.start()
        bus = AppLogBus(InProcessBus(), log)
        for n in range(3):
            await bus.publish(ev("app1", round_ * 3 + n))
            await bus.publish(ev("app2", round_ * 3 + n))
        await log.stop()  # writes what was appended
        assert await log.bounds("app1") == (1, 3 * (round_ + 1))
        await store.close()
    assert [(r.seq, r.data["n"]) for r in heard if r.app_id == "app1"] == \
        [(n, n - 1) for n in range(1, 7)]
    store = await open_store(db_url, key=STORE_KEY)
    try:
        log = SqlAppLog(store=store, retain=1000)
        assert [r.seq for r in await log.read("app2", 2, 10)] == [3, 4, 5, 6]
        assert await log.bounds("nobody") == (1, 0)
    finally:
        await store.close()


@pytest.fixture
async def redis_logs() -> AsyncIterator[tuple[RedisAppLog, RedisAppLog]]:
    prefix = f"tongdai-test-{secrets.token_hex(4)}"
    one = RedisAppLog.from_url(f"{REDIS_URL}?prefix={prefix}", retain=100)
    two = RedisAppLog.from_url(f"{REDIS_URL}?prefix={prefix}", retain=100)
    try:
        await one._client.ping()
    except OSError as exc:
        await one.stop()
        await two.stop()
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        keys = [k async for k in one._client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await one._client.delete(*keys)
        await one.stop()
        await two.stop()


async def _until(records: Sequence[AppRecord], count: int) -> None:
    async with asyncio.timeout(5):
        while len(records) < count:  # noqa: ASYNC110 - polls what a listener appends
            await asyncio.sleep(0.01)


async def test_two_processes_on_one_redis_agree_on_the_numbers(
        redis_logs: tuple[RedisAppLog, RedisAppLog]) -> None:
    one, two = redis_logs
    heard_one: list[AppRecord] = []
    heard_two: list[AppRecord] = []
    one.listen(heard_one.extend)
    two.listen(heard_two.extend)
    for n in range(50):  # both publish, interleaved, for the same app
        (one if n % 2 else two).append(ev("app1", n))
    one.append(ev("app2", 99))
    await one.flushed()
    await two.flushed()
    await _until(heard_one, 51)
    await _until(heard_two, 51)
    mine = [(r.seq, r.data["n"]) for r in heard_one if r.app_id == "app1"]
    assert [s for s, _ in mine] == list(range(1, 51))
    assert mine == [(r.seq, r.data["n"]) for r in heard_two if r.app_id == "app1"]
    assert [r.seq for r in heard_two if r.app_id == "app2"] == [1]
    # Each process's own events keep their order.
    assert [n for _, n in mine if n % 2] == list(range(1, 50, 2))
    assert [r.seq for r in await two.read("app1", 47, 10)] == [48, 49, 50]
    assert await one.bounds("app1") == (1, 50)


async def test_redis_keeps_about_retain_events_per_app(
        redis_logs: tuple[RedisAppLog, RedisAppLog]) -> None:
    one, _ = redis_logs
    for n in range(1000):
        one.append(ev("app1", n))
    await one.flushed()
    first, last = await one.bounds("app1")
    assert last == 1000 and 1 < first <= 901  # MAXLEN ~ trims whole nodes: about retain
    assert [r.seq for r in await one.read("app1", 998, 10)] == [999, 1000]
