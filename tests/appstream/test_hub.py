"""The app stream hub's fan-out: each subscriber gets, in order and once, the records
its bindings and devices select; a batch is filtered once per kind of subscriber."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tongdai.appstream.hub import AppStreamHub, Subscriber
from tongdai.appstream.log import Listener
from tongdai.appstream.record import AppRecord
from tongdai.bus import Event


class MemoryLog:
    """The AppLog protocol over a list: what the hub reads when a subscriber attaches."""

    def __init__(self) -> None:
        self.records: list[AppRecord] = []
        self.listeners: list[Listener] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def append(self, event: Event) -> None:
        raise NotImplementedError

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    async def read(self, app_id: str, after: int, limit: int) -> Sequence[AppRecord]:
        return [r for r in self.records if r.app_id == app_id and r.seq > after][:limit]

    async def bounds(self, app_id: str) -> tuple[int, int]:
        seqs = [r.seq for r in self.records if r.app_id == app_id] or [0]
        return min(seqs), max(seqs)


def _rec(seq: int, kind: str, *devices: str, app_id: str = "a") -> AppRecord:
    return AppRecord(app_id=app_id, seq=seq, type=kind, ts=float(seq), devices=devices,
                     data={"n": seq})


def _messages(sub: Subscriber) -> list[str]:
    out = []
    while (msg := sub.mailbox.next_ready()) is not None:
        out.append(msg)
    return out


def _seqs(sub: Subscriber) -> list[int]:
    return [json.loads(line)["seq"] for m in _messages(sub) for line in m.split("\n")]


async def _hub(limit: int = 100) -> tuple[AppStreamHub, MemoryLog]:
    log = MemoryLog()
    return AppStreamHub(log=log, queue_limit=limit), log


async def test_one_batch_reaches_each_kind_of_subscriber_with_what_it_selects() -> None:
    hub, _ = await _hub()
    calls = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                              since=None)).subscriber
    calls_too = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                                  since=None)).subscriber
    bob = (await hub.attach(app_id="a", bindings=("call.*",), devices=frozenset({"bob"}),
                            since=None)).subscriber
    devices = (await hub.attach(app_id="a", bindings=("device.*",), devices=None,
                                since=None)).subscriber
    other = (await hub.attach(app_id="b", bindings=("call.*",), devices=None,
                              since=None)).subscriber
    hub.deliver([_rec(1, "call.ringing", "alice"), _rec(2, "device.registered", "bob"),
                 _rec(1, "call.ringing", app_id="b"), _rec(3, "call.answered", "bob"),
                 _rec(4, "call.ended", "alice", "bob")])
    assert _seqs(calls) == _seqs(calls_too) == [1, 3, 4]
    assert _seqs(bob) == [3, 4]
    assert _seqs(devices) == [2]
    assert _seqs(other) == [1]


async def test_records_at_or_below_what_a_subscriber_was_given_are_not_repeated() -> None:
    hub, _ = await _hub()
    sub = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                            since=None)).subscriber
    hub.deliver([_rec(1, "call.ringing"), _rec(2, "call.ended")])
    hub.deliver([_rec(2, "call.ended"), _rec(3, "call.ringing")])
    hub.deliver([_rec(3, "call.ringing")])
    hub.deliver([_rec(5, "call.ringing"), _rec(4, "call.ended")])  # out of order: as sent
    assert _seqs(sub) == [1, 2, 3, 5]


async def test_a_batch_past_the_queue_limit_overflows_only_who_would_take_it() -> None:
    hub, _ = await _hub(limit=3)
    everything = (await hub.attach(app_id="a", bindings=("call.*", "device.*"), devices=None,
                                   since=None)).subscriber
    calls = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                              since=None)).subscriber
    hub.deliver([_rec(1, "call.ringing"), _rec(2, "device.registered"),
                 _rec(3, "call.ended"), _rec(4, "device.unregistered")])
    assert everything.mailbox.overflowed and everything.mailbox.next_ready() is None
    assert not calls.mailbox.overflowed
    assert _seqs(calls) == [1, 3]


async def test_a_message_carries_at_most_per_message_events_in_order() -> None:
    hub, _ = await _hub()
    one = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                            since=None)).subscriber
    three = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                              since=None, per_message=3)).subscriber
    hub.deliver([_rec(n, "call.ringing") for n in range(1, 6)])
    hub.deliver([_rec(6, "call.ringing")])
    hub.deliver([_rec(7, "call.ended"), _rec(8, "device.registered")])
    hub.deliver([_rec(n, "call.ringing") for n in range(9, 13)])
    assert [len(m.split("\n")) for m in _messages(one)] == [1] * 11
    # Runs are built per batch (1-3 and 4-5, 6, 7, 9-11 and 12) and queued runs joined
    # while they fit in one message; a run is never split.
    msgs = _messages(three)
    assert [[json.loads(line)["seq"] for line in m.split("\n")] for m in msgs] == [
        [1, 2, 3], [4, 5, 6], [7], [9, 10, 11], [12]]
    assert len(three.mailbox) == 0 and three.mailbox.next_ready() is None


async def test_the_queue_limit_counts_events_not_messages() -> None:
    hub, _ = await _hub(limit=4)
    batched = (await hub.attach(app_id="a", bindings=("call.*",), devices=None,
                                since=None, per_message=256)).subscriber
    hub.deliver([_rec(n, "call.ringing") for n in range(1, 4)])
    assert len(batched.mailbox) == 3 and not batched.mailbox.overflowed
    hub.deliver([_rec(4, "call.ringing"), _rec(5, "call.ringing")])
    assert batched.mailbox.overflowed


async def test_a_subscriber_given_part_of_a_batch_gets_only_the_rest() -> None:
    hub, log = await _hub()
    log.records = [_rec(n, "call.ringing") for n in range(1, 4)]
    # Attached with since=0 after records 1-3 are in the log: those come as replay; a
    # batch 2-5 delivered later (as a log listener may) must add only 4 and 5.
    att = await hub.attach(app_id="a", bindings=("call.*",), devices=None, since=0,
                           per_message=256)
    assert [json.loads(m)["seq"] for m in att.replay] == [1, 2, 3]
    hub.deliver([_rec(n, "call.ringing") for n in range(2, 6)])
    assert _seqs(att.subscriber) == [4, 5]
