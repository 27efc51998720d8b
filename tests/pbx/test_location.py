"""The location service owns its background work: what it started, ``stop`` finishes."""

from __future__ import annotations

import asyncio
import time

from tongdai.bus.events import Event
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.location import Location
from tongdai.server import Pbx
from tongdai.store.records import Registration


class SlowBus:
    """A bus whose deliveries take a while (a shared bus across a network)."""

    def __init__(self) -> None:
        self.delivered: list[Event] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, event: Event) -> None:
        await asyncio.sleep(0.2)
        self.delivered.append(event)

    def subscribe(self) -> object:
        raise NotImplementedError


async def test_stop_delivers_the_events_already_announced(pbx: Pbx) -> None:
    app = await pbx.store.create_app("loc")
    await pbx.store.add_device(app.app_id, "alice", digest_keys("alice", "r", "alice-secret"))
    bus = SlowBus()
    location = Location(store=pbx.store, devices=pbx.store, bus=bus,  # type: ignore[arg-type]
                        wall_clock=time.time, flush_interval=60.0)
    await location.start()
    location.apply(sip_user="alice", app_id=app.app_id, remove=[], set_=[Registration(
        sip_user="alice", contact="sip:alice@198.51.100.7:5062", source_host="198.51.100.7",
        source_port=5062, transport="udp", expires_at=time.time() + 600, call_id="c",
        cseq=1, user_agent="t",
    )])
    await asyncio.sleep(0)  # the announcement is scheduled, its delivery under way
    await location.stop()
    assert [e.type for e in bus.delivered] == ["device.registered"]
    # and the binding was written behind before stop returned
    assert [r.sip_user for r in await pbx.store.load_registrations(time.time())] == ["alice"]
