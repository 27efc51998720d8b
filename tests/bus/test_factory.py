"""Choosing a backend by URL, and the package's public surface."""

from __future__ import annotations

import pytest

import tongdai.bus
from tongdai.api.hub import EventHub
from tongdai.bus import InProcessBus, RedisBus, open_bus

from .conftest import Bus, ev, wait_for


@pytest.mark.parametrize("url", ["", "memory://"])
def test_memory_urls_give_the_in_process_bus(url: str) -> None:
    assert type(open_bus(url)) is InProcessBus


async def test_redis_url_gives_a_redis_bus_with_its_prefix() -> None:
    bus = open_bus("redis://:pw@127.0.0.1:6379/2?prefix=site-a&socket_keepalive=true")
    assert isinstance(bus, RedisBus)
    assert bus.channel == "site-a:events"
    await bus.close()
    default = open_bus("rediss://127.0.0.1:6380/0")
    assert isinstance(default, RedisBus)
    assert default.channel == "tongdai:events"
    await default.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [("nats://user:s3cret@host:4222", "'nats'"), ("localhost:6379", "no scheme"),
     ("memory://elsewhere", "'memory'")],
)
def test_other_urls_are_refused_without_echoing_secrets(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match="memory:// or redis://") as info:
        open_bus(url)
    assert shown in str(info.value)
    assert "s3cret" not in str(info.value)


def test_an_unusable_redis_url_is_refused_at_once() -> None:
    with pytest.raises(ValueError):
        open_bus("redis://127.0.0.1:notaport/0")
    with pytest.raises(ValueError, match="prefix"):
        open_bus("redis://127.0.0.1:6379/0?prefix=")


def test_public_surface() -> None:
    assert set(tongdai.bus.__all__) == {
        "Event", "EventBus", "InProcessBus", "RedisBus", "RedisSubscription",
        "Subscription", "open_bus",
    }


async def test_the_open_api_hub_runs_on_every_backend(bus: Bus) -> None:
    hub = EventHub(bus=bus)
    async with hub:
        attached = hub.attach("app1", "100", since=None)
        for n in range(3):
            await bus.publish(ev(n, kind="device.registered"))
        await wait_for(lambda: len(attached.mailbox) == 3)
        assert hub.last_seq("app1", "100") == 3
    assert not hub.running
