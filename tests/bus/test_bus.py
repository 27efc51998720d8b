"""One suite, run against every bus backend: what a publisher and a subscriber rely on."""

from __future__ import annotations

import asyncio

from tongdai.bus import Event

from .conftest import Bus, ev, take, wait_for


async def test_round_trip_keeps_every_field(bus: Bus) -> None:
    event = Event(
        type="call.answered", app_id="app-7", sip_users=("100", "101"), ts=1712345678.123456,
        data={"call_id": "c-1", "caller": "Nguyễn Văn A", "duration": 0, "tags": ["x", 1],
              "nested": {"ok": True, "none": None}},
    )
    async with bus.subscribe() as sub:
        await bus.publish(event)
        [got] = await take(sub, 1)
    assert got == event
    assert isinstance(got.sip_users, tuple)
    assert got.ts == event.ts


async def test_order_is_preserved_for_1000_events(bus: Bus) -> None:
    async with bus.subscribe() as sub:
        for n in range(1000):
            await bus.publish(ev(n))
        got = await take(sub, 1000)
    assert [e.data["n"] for e in got] == list(range(1000))


async def test_order_is_preserved_when_publishes_are_spawned(bus: Bus) -> None:
    # The PBX publishes from tasks it spawns one per event, in order.
    async with bus.subscribe() as sub:
        tasks = [asyncio.ensure_future(bus.publish(ev(n))) for n in range(200)]
        await asyncio.gather(*tasks)
        got = await take(sub, 200)
    assert [e.data["n"] for e in got] == list(range(200))


async def test_every_subscriber_gets_everything(bus: Bus) -> None:
    subs = [bus.subscribe() for _ in range(3)]
    for n in range(100):
        await bus.publish(ev(n))
    for sub in subs:
        assert [e.data["n"] for e in await take(sub, 100)] == list(range(100))
        sub.close()


async def test_a_closed_subscription_stops_receiving(bus: Bus) -> None:
    closed, witness = bus.subscribe(), bus.subscribe()
    await bus.publish(ev(1))
    assert [e.data["n"] for e in await take(closed, 1)] == [1]
    assert [e.data["n"] for e in await take(witness, 1)] == [1]
    async with closed:
        pass  # leaving ``async with`` closes it
    await bus.publish(ev(2))
    # Once the witness has event 2, the closed subscription would have it too.
    assert [e.data["n"] for e in await take(witness, 1)] == [2]
    assert closed.get_nowait() is None
    witness.close()


async def test_events_published_before_subscribing_are_not_delivered(bus: Bus) -> None:
    for n in range(5):
        await bus.publish(ev(n))
    async with bus.subscribe() as sub:
        await bus.publish(ev(5))
        [first] = await take(sub, 1)
        assert first.data["n"] == 5
        assert sub.get_nowait() is None


async def test_get_nowait_returns_queued_events_then_none(bus: Bus) -> None:
    async with bus.subscribe() as sub:
        assert sub.get_nowait() is None
        await bus.publish(ev(1))
        await bus.publish(ev(2))
        [got] = await take(sub, 1)
        assert got.data["n"] == 1
        # Event 2 may still be on its way from Redis: wait for it without consuming.
        seen: list[Event] = []

        def second_arrived() -> bool:
            event = sub.get_nowait()
            if event is not None:
                seen.append(event)
            return bool(seen)

        await wait_for(second_arrived)
        assert [e.data["n"] for e in seen] == [2]
        assert sub.get_nowait() is None


async def test_start_and_close_are_idempotent(bus: Bus) -> None:
    await bus.start()
    async with bus.subscribe() as sub:
        await bus.publish(ev(1))
        assert [e.data["n"] for e in await take(sub, 1)] == [1]
    await bus.close()
    await bus.close()
