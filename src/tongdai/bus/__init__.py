"""The event bus: call and device events, published by the PBX, consumed by the Open API."""

from tongdai.bus.events import Event
from tongdai.bus.memory import InProcessBus, Subscription
from tongdai.bus.protocol import EventBus

__all__ = ["Event", "EventBus", "InProcessBus", "Subscription"]
