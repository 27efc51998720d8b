from __future__ import annotations

import asyncio
import json
from typing import Any

from tongdai.api.hub import EventHub, Mailbox
from tongdai.bus import Event, InProcessBus


def ev(type_: str, *users: str, app: str = "A", call_id: str | None = None, **data: Any) -> Event:
    if call_id is not None:
        data["call_id"] = call_id
    return Event(type=type_, app_id=app, sip_users=users, ts=1000.5, data=data)


def drain(mb: Mailbox) -> list[dict[str, Any]]:
    out = []
    while len(mb):
        msg = mb._items.popleft()
        out.append(json.loads(msg))
    return out


def hub(retain: int = 10, queue_limit: int = 100) -> EventHub:
    return EventHub(bus=InProcessBus(), retain=retain, queue_limit=queue_limit)


async def test_numbers_events_per_device_and_delivers_only_to_named_devices() -> None:
    h = hub()
    alice = h.attach("A", "alice", None).mailbox
    anna = h.attach("A", "anna", None).mailbox
    bob_other_app = h.attach("B", "alice", None).mailbox
    h.handle(ev("call.ringing", "alice", "anna", call_id="c1", direction="from_ab"))
    h.handle(ev("device.registered", "alice", sip_user="alice"))
    h.handle(ev("call.answered", "anna", call_id="c1"))
    got = drain(alice)
    assert [(m["type"], m["seq"]) for m in got] == [("call.ringing", 1), ("device.registered", 2)]
    assert got[0] == {"type": "call.ringing", "seq": 1, "ts": 1000.5,
                      "data": {"direction": "from_ab", "call_id": "c1"}}
    assert [(m["type"], m["seq"]) for m in drain(anna)] == [
        ("call.ringing", 1), ("call.answered", 2)]
    assert drain(bob_other_app) == []
    assert h.last_seq("A", "alice") == 2 and h.last_seq("B", "alice") == 0


async def test_exactly_one_ended_and_nothing_after_it() -> None:
    h = hub()
    mb = h.attach("A", "alice", None).mailbox
    for t in ("call.ringing", "call.ringing", "call.answered", "call.ended", "call.ended",
              "call.answered"):
        h.handle(ev(t, "alice", call_id="c1"))
    h.handle(ev("call.ended", "alice", call_id="c2", status_detail="BUSY"))
    got = drain(mb)
    assert [(m["type"], m["data"]["call_id"]) for m in got] == [
        ("call.ringing", "c1"), ("call.answered", "c1"), ("call.ended", "c1"),
        ("call.ended", "c2")]
    assert [m["seq"] for m in got] == [1, 2, 3, 4]  # dropped duplicates take no number


async def test_duplicate_device_in_an_event_gets_it_once() -> None:
    h = hub()
    mb = h.attach("A", "alice", None).mailbox
    h.handle(ev("call.ringing", "alice", "alice", call_id="c1"))
    assert len(drain(mb)) == 1


async def test_unknown_types_are_ignored_and_odd_data_is_stringified() -> None:
    h = hub()
    mb = h.attach("A", "alice", None).mailbox
    h.handle(ev("call.transferred", "alice", call_id="c1"))
    h.handle(ev("device.registered", "alice", when=object()))
    got = drain(mb)
    assert [m["type"] for m in got] == ["device.registered"]
    assert got[0]["seq"] == 1 and isinstance(got[0]["data"]["when"], str)


async def test_replay_since_and_gap_beyond_the_window() -> None:
    h = hub(retain=10)
    for i in range(25):
        h.handle(ev("device.registered", "alice", n=i))
    att = h.attach("A", "alice", 20)
    assert (att.last_seq, att.gap) == (25, None)
    assert [json.loads(m)["seq"] for m in att.replay] == [21, 22, 23, 24, 25]
    att = h.attach("A", "alice", 3)
    assert att.gap == (4, 15)
    assert [json.loads(m)["seq"] for m in att.replay] == list(range(16, 26))
    att = h.attach("A", "alice", 15)
    assert att.gap is None and len(att.replay) == 10
    att = h.attach("A", "alice", 25)
    assert att.gap is None and att.replay == ()
    # A since beyond the latest seq comes from an earlier epoch: all retained, and the gap.
    att = h.attach("A", "alice", 99)
    assert att.gap == (1, 15) and len(att.replay) == 10
    att = h.attach("A", "nobody-yet", 0)
    assert (att.last_seq, att.gap, att.replay) == (0, None, ())


async def test_a_slow_mailbox_overflows_alone() -> None:
    h = hub(queue_limit=5)
    slow = h.attach("A", "alice", None).mailbox
    fast = h.attach("A", "alice", None).mailbox
    for i in range(12):
        h.handle(ev("device.registered", "alice", n=i))
        drain(fast)
    assert slow.overflowed and len(slow) == 0
    assert await slow.get() is None
    await asyncio.wait_for(slow.finished(), 1)
    assert not fast.overflowed
    assert h.stats()["clients"] == 1  # the overflowed one was dropped


async def test_hub_follows_the_bus_and_closes_mailboxes() -> None:
    bus = InProcessBus()
    async with EventHub(bus=bus, retain=10, queue_limit=10) as h:
        mb = h.attach("A", "alice", None).mailbox
        await bus.publish(ev("call.ringing", "alice", call_id="c1"))
        msg = await asyncio.wait_for(mb.get(), 1)
        assert msg is not None and json.loads(msg)["seq"] == 1
        assert h.running
    assert not h.running and mb.closed
    assert await mb.get() is None
    assert not bus._subs  # the subscription was released
