"""Fresh deliveries go from the outbox to the sender in memory; the database is read
for what memory does not hold, and a call's order holds across both paths."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.store.support import STORE_KEY

from tongdai.bus import Event, InProcessBus
from tongdai.store.records import AppRec
from tongdai.store.sql import SqlStore, open_store
from tongdai.webhooks.service import WebhookService
from tongdai.webhooks.store import NewDelivery, OutboxRead

from .receiver import Receiver
from .test_delivery import (
    SECRET,
    _call_events,
    _free_port,
    _per_call_order,
    _service,
    _settings,
    _until,
)


class _Reads:
    """The sender's reads of the outbox: how many began, and which deliveries each
    one that ended got (by the number it began with)."""

    def __init__(self, store: SqlStore) -> None:
        self.count = 0
        self.got: dict[int, set[str]] = {}
        self._read = store.read_outbox

    async def __call__(self, **kw: object) -> OutboxRead:
        self.count += 1
        n = self.count
        got = await self._read(**kw)  # type: ignore[arg-type]
        self.got[n] = {d.delivery_id for d, _ in got.rows}
        return got

    async def one_after(self, n: int) -> set[str]:
        """What the first read begun after read number ``n`` got, once it ended."""
        async def ended() -> bool:
            return any(k > n for k in self.got)
        await _until(ended)
        return self.got[min(k for k in self.got if k > n)]


async def _watched(store: SqlStore, monkeypatch: pytest.MonkeyPatch,
                   ) -> tuple[AppRec, Receiver, _Reads]:
    """An app with one endpoint at a started receiver; the sender's reads of the
    outbox counted."""
    app = await store.create_app("acme")
    rx = Receiver(secrets=[SECRET])
    await rx.start()
    await store.add_webhook(app.app_id, rx.url, ("call.*",), secret=SECRET, now=1.0)
    reads = _Reads(store)
    monkeypatch.setattr(store, "read_outbox", reads)
    return app, rx, reads


async def test_fresh_deliveries_are_sent_without_reading_the_outbox(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, rx, reads = await _watched(store, monkeypatch)
    svc = await _service(store, _settings(tmp_path))
    events = _call_events(app.app_id, 10)
    try:
        # The first is read: the sender learns the endpoint's state from the database.
        await svc.bus.publish(events[0])
        await rx.wait_for(1)
        before, started = reads.count, time.monotonic()
        for n, e in enumerate(events[1:], start=2):
            await svc.bus.publish(e)  # one at a time: each would need its own read
            await rx.wait_for(n)
        polls = int(time.monotonic() - started) + 1  # the sender's 1 s poll
    finally:
        await svc.stop()
        await rx.stop()
    assert reads.count - before <= polls < len(events) - 1
    assert len(rx.got) == len(events)


async def test_a_calls_order_holds_when_its_endpoint_has_deliveries_to_retry(
    store: SqlStore, tmp_path: Path,
) -> None:
    """Ringing fails (no receiver) and waits in the database for its retry; answered
    and ended, published once its endpoint's rest is over (before the sender's next
    read), are fresh: they still go after it."""
    app = await store.create_app("acme")
    port = _free_port()
    rx = Receiver(secrets=[SECRET])
    await store.add_webhook(app.app_id, f"http://127.0.0.1:{port}/hook", ("call.*",),
                            secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path, webhook_retry_base=0.3,
                                          webhook_retry_max=0.3))
    events = _call_events(app.app_id, 5)
    try:
        for e in events[:5]:  # ringing of each call
            await svc.bus.publish(e)

        async def rested() -> bool:  # failed, and its rest is over: retry is due
            [e] = await store.list_webhooks()
            return e.failures > 0 and e.paused_until < time.time()
        await _until(rested)
        await rx.start(port)
        for e in events[5:]:
            await svc.bus.publish(e)
        await rx.wait_for(15)
    finally:
        await svc.stop()
        await rx.stop()
    order = _per_call_order(rx)
    assert len(order) == 5
    assert all(v == ["call.ringing", "call.answered", "call.ended"] for v in order.values())


async def test_a_delivery_read_back_before_it_is_handed_over_is_sent_once(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The outbox write commits; the sender's poll reads the new row back before the
    outbox hands it over in memory. One of the two paths sends it, not both."""
    app, rx, reads = await _watched(store, monkeypatch)
    write, raced = store.add_deliveries, False
    read_back: set[str] = set()

    async def write_then_read(rows: Sequence[NewDelivery], *, node: str) -> list[int]:
        seqs = await write(rows, node=node)
        if raced:  # committed: the next poll reads it before the hand-off
            read_back.update(await reads.one_after(reads.count))
        return seqs

    monkeypatch.setattr(store, "add_deliveries", write_then_read)
    svc = await _service(store, _settings(tmp_path))
    ringing, answered, ended = _call_events(app.app_id, 1)
    try:
        await svc.bus.publish(ringing)  # the sender learns the endpoint's state
        await rx.wait_for(1)
        raced = True
        await svc.bus.publish(answered)
        raced = False
        # The same call's next event goes out after any second copy of the last.
        await svc.bus.publish(ended)
        await rx.wait_for(3)
    finally:
        await svc.stop()
        await rx.stop()
    [answered_id] = [r.delivery_id for r in rx.got if r.event == "call.answered"][:1]
    assert answered_id in read_back  # the interleaving happened
    assert [r.event for r in rx.got] == ["call.ringing", "call.answered", "call.ended"]


def _node(store: SqlStore, settings: object, node: str,
          clock: Callable[[], float]) -> WebhookService:
    return WebhookService(store=store, bus=InProcessBus(), settings=settings,  # type: ignore[arg-type]
                          node=node, wall_clock=clock)


async def test_a_calls_order_holds_when_another_node_rests_the_endpoint(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Node B's retry waits in the database; node A then rests the shared endpoint for
    long. When B's own rest is over, its read gets nothing of that endpoint: B must
    not take that for "all read back" and send the call's next event ahead."""
    st_a = await open_store(db_url, key=STORE_KEY)
    st_b = await open_store(db_url, key=STORE_KEY)
    rx = Receiver(secrets=[SECRET])
    await rx.start()
    app = await st_a.create_app("acme")
    hook = await st_a.add_webhook(app.app_id, rx.url, ("call.*",), secret=SECRET, now=1.0)
    reads_b = _Reads(st_b)
    monkeypatch.setattr(st_b, "read_outbox", reads_b)
    skew = [0.0]  # B's clock, moved on past B's own rest
    # A rests the endpoint 300-600 s after a failure, B 15-30 s.
    a = _node(st_a, _settings(tmp_path, webhook_retry_base=600.0, webhook_retry_max=600.0),
              "node-a", time.time)
    b = _node(st_b, _settings(tmp_path, webhook_retry_base=30.0, webhook_retry_max=30.0),
              "node-b", lambda: time.time() + skew[0])

    def event(kind: str, call: str) -> Event:
        return Event(type=kind, app_id=app.app_id, sip_users=("u1",), ts=time.time(),
                     data={"call_id": call})

    async def rests(longer_than: float) -> None:
        async def resting() -> bool:
            e = await st_a.get_webhook(hook.endpoint_id)
            return e is not None and e.paused_until > time.time() + longer_than
        await _until(resting)

    await a.start()
    await b.start()
    try:
        await b.bus.publish(event("call.ringing", "x"))  # each node learns the endpoint
        await a.bus.publish(event("call.ringing", "w"))
        await rx.wait_for(2)
        rx.status = 500
        await b.bus.publish(event("call.ringing", "y"))  # fails: B rests, y waits
        await rests(10.0)
        await a.bus.publish(event("call.ringing", "z"))  # fails: A rests the endpoint
        await rests(100.0)
        rx.status = 200
        skew[0] = 40.0  # B's rest is over; the endpoint's is not
        b.sender.wake()
        await reads_b.one_after(reads_b.count)
        await b.bus.publish(event("call.answered", "y"))
        await st_a.enable_webhook(hook.endpoint_id)  # an administrator ends the rest
        await rx.wait_for(5)
    finally:
        await b.stop()
        await a.stop()
        await rx.stop()
        await st_b.close()
        await st_a.close()
    assert _per_call_order(rx)["y"] == ["call.ringing", "call.answered"]
