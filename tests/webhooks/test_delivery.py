"""Webhooks end to end in one process: the real outbox on a real database, the real
sender, a real HTTP receiver on loopback that checks every signature."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.store.support import STORE_KEY

from tongdai import logs
from tongdai.bus import Event, InProcessBus
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore, open_store
from tongdai.webhooks.service import WebhookService
from tongdai.webhooks.store import DELIVERED, PENDING

from .receiver import Receiver

SECRET = "whsec_delivery-test"
NODE = "node-a"


def _settings(tmp_path: Path, **over: object) -> Settings:
    base: dict[str, object] = dict(
        data_dir=tmp_path, webhook_allow_private=True, webhook_retry_base=0.05,
        webhook_retry_max=0.2, webhook_timeout=2.0)
    return Settings(**(base | over))  # type: ignore[arg-type]


async def _service(store: SqlStore, settings: Settings, bus: InProcessBus | None = None
                   ) -> WebhookService:
    svc = WebhookService(store=store, bus=bus or InProcessBus(), settings=settings,
                         node=NODE, wall_clock=time.time)
    await svc.start()
    return svc


def _call_events(app_id: str, calls: int) -> list[Event]:
    """Ringing, answered, ended for each call, the calls interleaved."""
    out = []
    for kind in ("call.ringing", "call.answered", "call.ended"):
        for n in range(calls):
            out.append(Event(type=kind, app_id=app_id, sip_users=(f"u{n}",), ts=time.time(),
                             data={"call_id": f"call-{n}", "n": n}))
    return out


def _per_call_order(r: Receiver) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {}
    for got in r.unique().values():
        order.setdefault(got.body["data"]["call_id"], []).append(got.event)
    return order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_events_arrive_signed_once_and_in_order_per_call(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = await store.create_app("acme")
    calls_rx, devices_rx = Receiver(secrets=[SECRET]), Receiver(secrets=[SECRET])
    await calls_rx.start()
    await devices_rx.start()
    await store.add_webhook(app.app_id, calls_rx.url, ("call.*",), secret=SECRET, now=1.0)
    await store.add_webhook(app.app_id, devices_rx.url, ("device.*",), secret=SECRET, now=1.0)
    bus = InProcessBus()
    sub = bus.subscribe()
    svc = await _service(store, _settings(tmp_path), bus)
    try:
        events = _call_events(app.app_id, 20)
        events.append(Event(type="device.registered", app_id=app.app_id, sip_users=("u1",),
                            ts=time.time(), data={"sip_user": "u1"}))
        events.append(Event(type="call.ended", app_id="another-app", sip_users=(),
                            ts=time.time(), data={"call_id": "x"}))
        await asyncio.gather(*(svc.bus.publish(e) for e in events))
        await calls_rx.wait_for(60)
        await devices_rx.wait_for(1)
        await asyncio.sleep(0.2)
    finally:
        await svc.stop()
        await calls_rx.stop()
        await devices_rx.stop()
    got = calls_rx.unique()
    assert len(got) == 60 == len(calls_rx.got)  # once each: nothing sent twice
    assert all(r.signature_ok for r in got.values())
    order = _per_call_order(calls_rx)
    assert len(order) == 20
    assert all(v == ["call.ringing", "call.answered", "call.ended"] for v in order.values())
    assert [r.event for r in devices_rx.got] == ["device.registered"]
    body = devices_rx.got[0].body
    assert body["type"] == "device.registered" and body["app_id"] == app.app_id
    assert body["data"] == {"sip_user": "u1"} and body["id"].startswith("evt_")
    # The live bus saw every event too, the other app's included.
    assert sum(1 for _ in iter(sub.get_nowait, None)) == len(events)
    assert all(d.status == DELIVERED and d.attempts == 1
               for d in await store.list_deliveries(limit=100))


async def test_publish_returns_once_the_outbox_holds_the_delivery(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = await store.create_app("acme")
    # Nothing listens here: the delivery stays pending, but it is written.
    await store.add_webhook(app.app_id, f"http://127.0.0.1:{_free_port()}/h", ("call.*",),
                            secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path))
    try:
        await svc.bus.publish(_call_events(app.app_id, 1)[0])
        [d] = await store.list_deliveries()
        assert d.event_type == "call.ringing"
        # An event no webhook wants costs no write.
        await svc.bus.publish(Event(type="device.registered", app_id=app.app_id,
                                    sip_users=("u",), ts=time.time()))
        assert len(await store.list_deliveries()) == 1
    finally:
        await svc.stop()


async def test_a_receiver_outage_and_a_restart_lose_nothing(
    db_url: str, tmp_path: Path,
) -> None:
    """On SQLite and on PostgreSQL."""
    store = await open_store(db_url, key=STORE_KEY)
    try:
        await _outage_and_restart(store, tmp_path)
    finally:
        await store.close()


async def _outage_and_restart(store: SqlStore, tmp_path: Path) -> None:
    app = await store.create_app("acme")
    port = _free_port()
    rx = Receiver(secrets=[SECRET])
    await store.add_webhook(app.app_id, f"http://127.0.0.1:{port}/hook", ("*",),
                            secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path))
    try:
        for e in _call_events(app.app_id, 5):
            await svc.bus.publish(e)

        async def failed() -> bool:
            ds = await store.list_deliveries(limit=100)
            return any(d.attempts >= 2 for d in ds)
        await _until(failed)
    finally:
        await svc.stop()  # tongdai stops with everything pending
    pending = await store.list_deliveries(status=PENDING, limit=100)
    assert len(pending) == 15
    assert any("Connect" in d.last_error for d in pending)
    [endpoint] = await store.list_webhooks()
    assert endpoint.failures >= 2 and endpoint.enabled
    await rx.start(port)  # the receiver comes back ...
    svc = await _service(store, _settings(tmp_path))  # ... and so does tongdai
    try:
        await rx.wait_for(15)
        await asyncio.sleep(0.2)
    finally:
        await svc.stop()
        await rx.stop()
    assert len(rx.got) == 15 and all(r.signature_ok for r in rx.got)
    assert all(v == ["call.ringing", "call.answered", "call.ended"]
               for v in _per_call_order(rx).values())
    [endpoint] = await store.list_webhooks()
    assert endpoint.failures == 0


async def test_failures_in_a_row_disable_the_endpoint_with_an_event_and_a_warning(
    store: SqlStore, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    app = await store.create_app("acme")
    broken, watcher = Receiver(secrets=[SECRET], status=500), Receiver(secrets=[SECRET])
    await broken.start()
    await watcher.start()
    bad = await store.add_webhook(app.app_id, broken.url, ("call.*",), secret=SECRET,
                                  now=1.0)
    await store.add_webhook(app.app_id, watcher.url, ("webhook.*",), secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path, webhook_disable_after=3))
    try:
        with caplog.at_level(logging.INFO, logger="tongdai.webhooks"):
            await svc.bus.publish(_call_events(app.app_id, 1)[0])
            await watcher.wait_for(1)
        [disabled] = watcher.got
        assert disabled.event == "webhook.disabled" and disabled.signature_ok
        assert disabled.body["data"]["endpoint_id"] == bad.endpoint_id
        assert disabled.body["data"]["last_error"] == "HTTP 500"
        warnings = [(r.getMessage(), logs.fields_of(r)) for r in caplog.records
                    if r.levelno == logging.WARNING]
        [warning] = warnings
        assert warning == ("webhook.disabled", {
            "app_id": app.app_id, "endpoint_id": bad.endpoint_id, "host": "127.0.0.1",
            "failures": 3, "error": "HTTP 500"})  # the host, not the URL's path
        assert broken.requests == 3
        now = await store.get_webhook(bad.endpoint_id)
        assert now is not None and not now.enabled
        assert now.disabled_reason.startswith("3 failed attempts in a row")
        # Disabled: new events are not queued for it; the queued one waits.
        await svc.bus.publish(_call_events(app.app_id, 2)[1])
        [d] = await store.list_deliveries(endpoint_id=bad.endpoint_id)
        assert d.status == PENDING and d.attempts == 3 and d.last_error == "HTTP 500"
        # Fixed and enabled again: the waiting delivery goes out.
        broken.status = 200
        await store.enable_webhook(bad.endpoint_id)
        await broken.wait_for(1)
    finally:
        await svc.stop()
        await broken.stop()
        await watcher.stop()
    assert broken.got[0].event == "call.ringing"


async def test_private_targets_are_refused_unless_allowed(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = await store.create_app("acme")
    rx = Receiver(secrets=[SECRET])
    await rx.start()
    await store.add_webhook(app.app_id, rx.url, ("*",), secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path, webhook_allow_private=False))
    try:
        await svc.bus.publish(_call_events(app.app_id, 1)[0])

        async def tried() -> bool:
            return (await store.list_deliveries())[0].attempts >= 1
        await _until(tried)
    finally:
        await svc.stop()
        await rx.stop()
    [d] = await store.list_deliveries()
    assert d.status == PENDING and "loopback" in d.last_error
    assert rx.requests == 0


async def test_a_redirect_is_a_failure_not_followed(store: SqlStore, tmp_path: Path) -> None:
    app = await store.create_app("acme")
    rx = Receiver(secrets=[SECRET], status=302)
    await rx.start()
    await store.add_webhook(app.app_id, rx.url, ("*",), secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path))
    try:
        await svc.bus.publish(_call_events(app.app_id, 1)[0])

        async def tried() -> bool:
            return (await store.list_deliveries())[0].attempts >= 1
        await _until(tried)
    finally:
        await svc.stop()
        await rx.stop()
    [d] = await store.list_deliveries()
    assert d.status == PENDING and d.last_error == "HTTP 302"


async def test_the_bus_keeps_publication_order_while_some_events_wait_for_the_outbox(
    store: SqlStore, tmp_path: Path,
) -> None:
    """Only call.ringing has a webhook here, so only it waits for a database write;
    call.answered, published just after it, still reaches subscribers after it."""
    app = await store.create_app("acme")
    await store.add_webhook(app.app_id, f"http://127.0.0.1:{_free_port()}/h",
                            ("call.ringing",), secret=SECRET, now=1.0)
    bus = InProcessBus()
    sub = bus.subscribe()
    svc = await _service(store, _settings(tmp_path), bus)
    try:
        ringing, answered, _ = _call_events(app.app_id, 1)
        # As the PBX publishes: each event from its own task.
        await asyncio.gather(asyncio.create_task(svc.bus.publish(ringing)),
                             asyncio.create_task(svc.bus.publish(answered)))
    finally:
        await svc.stop()
    assert [e.type for e in iter(sub.get_nowait, None)] == ["call.ringing", "call.answered"]


async def test_a_slow_receiver_does_not_hold_up_the_others(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = await store.create_app("acme")
    slow, fast = Receiver(secrets=[SECRET], delay=1.5), Receiver(secrets=[SECRET])
    await slow.start()
    await fast.start()
    await store.add_webhook(app.app_id, slow.url, ("call.ringing",), secret=SECRET, now=1.0)
    await store.add_webhook(app.app_id, fast.url, ("call.ended",), secret=SECRET, now=1.0)
    svc = await _service(store, _settings(tmp_path, webhook_concurrency=4))
    try:
        events = _call_events(app.app_id, 8)  # eight ringing (slow) before eight ended
        started = time.monotonic()
        await asyncio.gather(*(svc.bus.publish(e) for e in events))
        await fast.wait_for(8)
        took = time.monotonic() - started
    finally:
        await svc.stop()
        await slow.stop()
        await fast.stop()
    # Without a per-webhook share the slow one would hold all four slots for 1.5 s
    # at a time: the fast one would wait three seconds and more.
    assert took < 1.4


class _SlowBus(InProcessBus):
    """A bus that takes each event at once and then waits, as a bus writing to a
    database or a network would."""

    async def publish(self, event: Event) -> None:
        await super().publish(event)
        await asyncio.sleep(0.2)


async def test_ordering_does_not_serialise_a_bus_that_waits_in_publish(
    store: SqlStore, tmp_path: Path,
) -> None:
    app = await store.create_app("acme")
    await store.add_webhook(app.app_id, f"http://127.0.0.1:{_free_port()}/h",
                            ("call.ringing",), secret=SECRET, now=1.0)
    bus = _SlowBus()
    sub = bus.subscribe()
    svc = await _service(store, _settings(tmp_path), bus)
    try:
        events = _call_events(app.app_id, 10)
        started = time.monotonic()
        await asyncio.gather(*(asyncio.create_task(svc.bus.publish(e)) for e in events))
        took = time.monotonic() - started
    finally:
        await svc.stop()
    assert [e.data["n"] for e in iter(sub.get_nowait, None)] == [e.data["n"] for e in events]
    assert took < 1.0  # thirty publications one after the other would take six seconds
