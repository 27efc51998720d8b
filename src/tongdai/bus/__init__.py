"""The event bus: call and device events, published by the PBX, consumed by the Open API."""

from tongdai.bus.events import Event
from tongdai.bus.factory import open_bus
from tongdai.bus.memory import InProcessBus, Subscription
from tongdai.bus.protocol import EventBus
from tongdai.bus.redis import RedisBus, RedisSubscription

__all__ = [
    "Event",
    "EventBus",
    "InProcessBus",
    "RedisBus",
    "RedisSubscription",
    "Subscription",
    "open_bus",
]
