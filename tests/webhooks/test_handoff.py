"""Fresh deliveries go from the outbox to the sender in memory; the database is read
for what memory does not hold, and a call's order holds across both paths."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tongdai.store.sql import SqlStore
from tongdai.webhooks.store import EndpointRec

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
    """Counts the sender's reads of the outbox."""

    def __init__(self, store: SqlStore) -> None:
        self.count = 0
        self._read = store.pending_deliveries

    async def __call__(self, **kw: object) -> Sequence[tuple[object, EndpointRec]]:
        self.count += 1
        return await self._read(**kw)  # type: ignore[arg-type]


async def test_fresh_deliveries_are_sent_without_reading_the_outbox(
    store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = await store.create_app("acme")
    rx = Receiver(secrets=[SECRET])
    await rx.start()
    await store.add_webhook(app.app_id, rx.url, ("call.*",), secret=SECRET, now=1.0)
    reads = _Reads(store)
    monkeypatch.setattr(store, "pending_deliveries", reads)
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
