"""Fixtures for the bus suite: every backend, and a real Redis.

Redis is reached through ``TONGDAI_TEST_REDIS`` (default
``redis://127.0.0.1:6379/0``). When it is unreachable the Redis cases are skipped
locally, and fail when ``CI`` is set. Each test gets its own channel prefix, so
tests sharing one Redis never see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tongdai.bus import Event, InProcessBus, RedisBus, open_bus

REDIS_URL = os.environ.get("TONGDAI_TEST_REDIS", "redis://127.0.0.1:6379/0")

Bus = InProcessBus | RedisBus


async def require_redis() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        msg = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"tongdai-test-{secrets.token_hex(6)}"


@pytest.fixture
async def admin() -> AsyncIterator[Redis]:
    """A plain client of the test Redis, for what a bus does not do (kill clients...)."""
    await require_redis()
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Bus]:
    """A started bus of each backend, made through ``open_bus``."""
    if request.param == "memory":
        b = open_bus("memory://")
    else:
        await require_redis()
        b = open_bus(f"{REDIS_URL}?prefix={prefix}")
    await b.start()
    try:
        yield b
    finally:
        await b.close()


def ev(n: int, *, kind: str = "call.ringing", app_id: str = "app1") -> Event:
    return Event(type=kind, app_id=app_id, sip_users=("100",), ts=1700000000.0 + n,
                 data={"n": n})


async def take(sub: AsyncIterator[Event], count: int, within: float = 5.0) -> list[Event]:
    """The next ``count`` events of ``sub``; fails the test if they take too long."""
    got: list[Event] = []
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                got.append(await anext(sub))
    except TimeoutError:
        pytest.fail(f"received {len(got)} of {count} events within {within}s")
    return got


async def wait_for(predicate: Callable[[], object], within: float = 5.0) -> None:
    """Poll ``predicate`` until true: for state a bus exposes without a wake-up."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 -- polling public state on purpose
            await asyncio.sleep(0.02)
