"""What only the shared Redis bus does: cross-process delivery and surviving outages."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from tongdai.bus import Event, RedisBus, RedisSubscription
from tongdai.bus.redis import decode_event, encode_event

from .conftest import REDIS_URL, ev, require_redis, take, wait_for
from .proxy import RedisProxy

MakeBus = Callable[..., RedisBus]


@pytest.fixture
async def make_bus(prefix: str) -> AsyncIterator[MakeBus]:
    """Makes RedisBus instances (two "processes") on this test's channel; closes them."""
    await require_redis()
    made: list[RedisBus] = []

    def make(url: str = REDIS_URL, **kw: Any) -> RedisBus:
        kw.setdefault("prefix", prefix)
        made.append(RedisBus(url, **kw))
        return made[-1]

    yield make
    for b in made:
        await b.close()


async def _clients(admin: Redis, name: str, kind: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = await admin.client_list(_type=kind)
    return [c for c in found if c.get("name") == name]


async def _until_received(bus: RedisBus, sub: RedisSubscription) -> None:
    """Publish probes until one comes back: the bus publishes and is subscribed again."""
    async with asyncio.timeout(10):
        while True:
            await bus.publish(Event(type="test.probe", app_id="a", sip_users=(), ts=0.0))
            await asyncio.sleep(0.05)
            while (got := sub.get_nowait()) is not None:
                if got.type == "test.probe":
                    return


async def _numbered(sub: RedisSubscription, count: int) -> list[int]:
    """The numbers of the next ``count`` events that are not probes."""
    got: list[int] = []
    async with asyncio.timeout(5):
        while len(got) < count:
            event = await anext(sub)
            if event.type != "test.probe":
                got.append(event.data["n"])
    return got


async def test_two_buses_see_each_others_events(make_bus: MakeBus) -> None:
    a, b = make_bus(), make_bus()
    await a.start()
    await b.start()
    sub_a, sub_b = a.subscribe(), b.subscribe()
    await a.publish(ev(1))
    await b.publish(ev(2))
    # Each process sees both, its own and the other's; the relative order of two
    # publishers is whatever Redis saw, but both processes see the same one.
    got_a = [e.data["n"] for e in await take(sub_a, 2)]
    got_b = [e.data["n"] for e in await take(sub_b, 2)]
    assert sorted(got_a) == [1, 2]
    assert got_a == got_b


async def test_another_prefix_is_another_bus(make_bus: MakeBus, prefix: str) -> None:
    mine, other = make_bus(), make_bus(prefix=prefix + "-other")
    await mine.start()
    await other.start()
    sub_mine, sub_other = mine.subscribe(), other.subscribe()
    await mine.publish(ev(1))
    await other.publish(ev(2))
    assert [e.data["n"] for e in await take(sub_mine, 1)] == [1]
    assert [e.data["n"] for e in await take(sub_other, 1)] == [2]
    await mine.publish(ev(3))
    assert [e.data["n"] for e in await take(sub_mine, 1)] == [3]
    assert sub_other.get_nowait() is None


async def test_recovers_after_the_subscriber_connection_is_killed(
    make_bus: MakeBus, admin: Redis
) -> None:
    bus = make_bus()
    await bus.start()
    assert bus.connected
    sub = bus.subscribe()
    await bus.publish(ev(0))
    assert [e.data["n"] for e in await take(sub, 1)] == [0]

    [before] = await _clients(admin, bus.client_name, "pubsub")
    # CLIENT KILL TYPE pubsub, narrowed to this bus's subscriber: other tests share Redis.
    killed = await admin.client_kill_filter(_type="pubsub", addr=before["addr"])
    assert killed == 1

    await _until_received(bus, sub)
    [after] = await _clients(admin, bus.client_name, "pubsub")
    assert after["id"] != before["id"]
    assert bus.connected
    for n in range(1, 101):
        await bus.publish(ev(n))
    assert await _numbered(sub, 100) == list(range(1, 101))


async def test_recovers_after_the_publisher_connection_is_killed(
    make_bus: MakeBus, admin: Redis
) -> None:
    bus = make_bus()
    await bus.start()
    sub = bus.subscribe()
    await bus.publish(ev(0))
    assert [e.data["n"] for e in await take(sub, 1)] == [0]

    publishers = await _clients(admin, bus.client_name, "normal")
    assert publishers
    for c in publishers:
        await admin.client_kill_filter(_id=c["id"])
    for n in range(1, 101):
        await bus.publish(ev(n))
    assert await _numbered(sub, 100) == list(range(1, 101))
    assert bus.dropped == 0


@pytest.fixture
async def proxy() -> AsyncIterator[RedisProxy]:
    await require_redis()
    url = urlsplit(REDIS_URL)
    p = RedisProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await p.start()
    try:
        yield p
    finally:
        await p.sever()


async def test_a_silent_redis_is_detected_and_left(make_bus: MakeBus, proxy: RedisProxy) -> None:
    bus = make_bus(proxy.url, ping_interval=0.2, connect_timeout=0.5)
    await bus.start()
    assert bus.connected
    sub = bus.subscribe()
    # The connections stay open but nothing comes back: only the PING can tell.
    proxy.freeze()
    await wait_for(lambda: not bus.connected, 3)
    await wait_for(lambda: bus.connected, 5)
    await _until_received(bus, sub)


async def test_events_published_during_a_short_outage_are_sent_after_it(
    make_bus: MakeBus, proxy: RedisProxy
) -> None:
    listener, publisher = make_bus(), make_bus(proxy.url, publish_retry=10)
    await listener.start()
    await publisher.start()
    sub = listener.subscribe()
    await proxy.sever()
    for n in range(50):
        await publisher.publish(ev(n))
    await asyncio.sleep(0.3)
    assert publisher.pending == 50
    assert sub.get_nowait() is None
    await proxy.restore()
    assert [e.data["n"] for e in await take(sub, 50)] == list(range(50))
    assert publisher.dropped == 0
    await wait_for(lambda: publisher.connected, 5)


async def test_an_unreachable_redis_does_not_stop_the_publisher(
    make_bus: MakeBus, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    bus = make_bus(f"redis://:hunter2@127.0.0.1:{port}/0", publish_retry=0.3,
                   connect_timeout=0.2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tongdai.bus.redis"):
        await bus.start()
        assert time.monotonic() - started < 1.0
        assert not bus.connected
        sub = bus.subscribe()
        for n in range(10):
            await bus.publish(ev(n))
        await wait_for(lambda: not bus.pending, 3)
    assert bus.dropped == 10
    assert sub.get_nowait() is None
    assert "dropped 10 event(s)" in caplog.text
    assert "hunter2" not in caplog.text
    started = time.monotonic()
    await bus.close()
    assert time.monotonic() - started < 1.0


async def test_close_sends_what_is_queued(make_bus: MakeBus) -> None:
    listener, publisher = make_bus(), make_bus()
    await listener.start()
    await publisher.start()
    sub = listener.subscribe()
    for n in range(500):
        await publisher.publish(ev(n))
    await publisher.close()
    assert [e.data["n"] for e in await take(sub, 500)] == list(range(500))
    await publisher.publish(ev(999))  # after close: dropped, not raised
    assert publisher.dropped == 1


async def test_publish_before_start_is_refused(make_bus: MakeBus) -> None:
    bus = make_bus()
    with pytest.raises(RuntimeError, match="start"):
        await bus.publish(ev(1))


async def test_malformed_messages_are_ignored(
    make_bus: MakeBus, admin: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    bus = make_bus()
    await bus.start()
    sub = bus.subscribe()
    foreign = {"type": "device.registered", "app_id": "a", "sip_users": ["9"], "ts": 5,
               "data": {}}
    with caplog.at_level(logging.WARNING, logger="tongdai.bus.redis"):
        for raw in (b"not json", b"[1]", b"\xff", json.dumps({**foreign, "ts": "x"}),
                    json.dumps({**foreign, "sip_users": "9"}), json.dumps(foreign)):
            await admin.publish(bus.channel, raw)
        await bus.publish(ev(1))
        got = await take(sub, 2)
    # A well-formed event from another tool (no origin, int ts) is welcome.
    assert got[0] == Event(type="device.registered", app_id="a", sip_users=("9",), ts=5.0)
    assert got[1].data["n"] == 1
    assert sub.get_nowait() is None
    assert caplog.text.count("malformed") == 5


def test_codec_round_trip() -> None:
    event = Event(type="call.ended", app_id="x", sip_users=("1", "2"), ts=1.5,
                  data={"reason": "BUSY", "v": "Tổng đài"})
    assert decode_event(encode_event(event, origin="o", seq=7)) == (event, "o", 7)
    wire = json.loads(encode_event(event))
    assert set(wire) == {"type", "app_id", "sip_users", "ts", "data", "origin", "seq"}
    with pytest.raises(ValueError):
        decode_event(json.dumps({**wire, "seq": True}))
