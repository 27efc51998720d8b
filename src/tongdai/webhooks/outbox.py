"""The outbox: an event that an endpoint wants is written to the database as it is
published, before the publisher goes on (``OutboxBus``).

Writes are grouped: every event published while one write is in flight goes into the
next, in publication order, so a burst costs a few transactions, not one each. Which
endpoints want which events is kept in memory and reloaded when the configuration
changes (``config_version``, bumped by every webhook add/enable/remove).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from tongdai import logs
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus
from tongdai.webhooks.bindings import matches
from tongdai.webhooks.store import (
    PENDING,
    DeliveryRec,
    EndpointRec,
    NewDelivery,
    new_delivery_id,
)

log = logging.getLogger("tongdai.webhooks")

# How often the endpoint list is checked for changes made by another process (the CLI).
REFRESH_INTERVAL = 1.0


class OutboxStore(Protocol):
    async def list_webhooks(self, app_id: str | None = None) -> Sequence[EndpointRec]: ...
    async def add_deliveries(self, rows: Sequence[NewDelivery], *, node: str) -> list[int]: ...
    async def config_version(self) -> int: ...


def order_key(event: Event) -> str:
    """Deliveries with the same key reach an endpoint in publication order: a call's
    events, and a device's."""
    call_id = event.data.get("call_id")
    if isinstance(call_id, str) and call_id:
        return f"call:{call_id}"
    if event.sip_users:
        return f"device:{event.sip_users[0]}"
    return f"type:{event.type}"


def body_of(event: Event, event_id: str) -> str:
    """The JSON a receiver gets (docs/webhooks.md)."""
    return json.dumps({
        "id": event_id, "type": event.type, "app_id": event.app_id, "created_at": event.ts,
        "devices": list(event.sip_users), "data": event.data,
    }, separators=(",", ":"), ensure_ascii=False, default=str)


class Handoff(Protocol):
    """Who sends the deliveries written (the sender), told of each write before and
    after it, so that a delivery has one owner (``webhooks/sender.py``)."""

    def claim(self, rows: Sequence[NewDelivery]) -> None:
        """About to be written."""

    def take(self, rows: Sequence[tuple[DeliveryRec, EndpointRec]]) -> None:
        """Committed (seq order), each with its endpoint as the outbox knew it."""

    def unclaim(self, rows: Sequence[NewDelivery]) -> None:
        """The write failed; some may have committed all the same."""


class _NoHandoff:
    def claim(self, rows: Sequence[NewDelivery]) -> None:
        pass

    def take(self, rows: Sequence[tuple[DeliveryRec, EndpointRec]]) -> None:
        pass

    def unclaim(self, rows: Sequence[NewDelivery]) -> None:
        pass


class Outbox:
    def __init__(self, *, store: OutboxStore, node: str,
                 handoff: Handoff | None = None) -> None:
        self._store = store
        self._node = node
        self._handoff: Handoff = handoff or _NoHandoff()
        self._endpoints: dict[str, list[EndpointRec]] = {}
        self._version = -1
        self._queue: list[tuple[list[NewDelivery], list[EndpointRec],
                                asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._writer_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._writer_task = asyncio.create_task(self._writer(), name="webhook-outbox")
        self._watch_task = asyncio.create_task(self._watch(), name="webhook-endpoints")

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        # The writer is not cancelled mid-write: it finishes, writes what is queued
        # (what was published before the stop) and returns.
        self._stopping = True
        self._wake.set()
        if self._writer_task is not None:
            await self._writer_task
        await self._flush()
        self._writer_task = self._watch_task = None

    async def refresh(self) -> None:
        """Reload the enabled endpoints if the configuration changed."""
        version = await self._store.config_version()
        if version == self._version:
            return
        by_app: dict[str, list[EndpointRec]] = {}
        for e in await self._store.list_webhooks():
            if e.enabled:
                by_app.setdefault(e.app_id, []).append(e)
        self._endpoints, self._version = by_app, version

    async def record(self, event: Event) -> None:
        """Write a delivery of ``event`` for every endpoint that wants it; returns once
        they are committed (at once when no endpoint wants it)."""
        targets = [e for e in self._endpoints.get(event.app_id, ())
                   if matches(e.events, event.type)]
        if not targets:
            return
        event_id = "evt_" + secrets.token_hex(12)
        body, key = body_of(event, event_id), order_key(event)
        rows = [NewDelivery(delivery_id=new_delivery_id(), endpoint_id=e.endpoint_id,
                            event_id=event_id, event_type=event.type, order_key=key,
                            body=body, created_at=event.ts) for e in targets]
        # Queued before the first await: publication order is write order.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, targets, done))
        self._wake.set()
        await done

    async def _writer(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        rows = [r for rs, _, _ in batch for r in rs]
        endpoints = [e for _, es, _ in batch for e in es]
        seqs: list[int] = []
        error: BaseException | None = None
        self._handoff.claim(rows)
        try:
            for attempt in range(3):
                try:
                    seqs = await self._store.add_deliveries(rows, node=self._node)
                    error = None
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is away: try again shortly
                    error = exc
                    await asyncio.sleep(0.2 * (attempt + 1))
        except BaseException:
            self._handoff.unclaim(rows)
            raise
        for _, _, fut in batch:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        if error is None:
            self._handoff.take([(_committed(r, seq), e)
                                for r, seq, e in zip(rows, seqs, endpoints, strict=True)])
        else:
            self._handoff.unclaim(rows)
            logs.event(log, "webhook.outbox_failed", level=logging.ERROR,
                       deliveries=len(rows), error=type(error).__name__)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logs.event(log, "webhook.refresh_failed", level=logging.WARNING,
                           error=type(exc).__name__)


def _committed(row: NewDelivery, seq: int) -> DeliveryRec:
    return DeliveryRec(
        seq=seq, delivery_id=row.delivery_id, endpoint_id=row.endpoint_id,
        event_id=row.event_id, event_type=row.event_type, order_key=row.order_key,
        body=row.body, status=PENDING, attempts=0, last_error="", created_at=row.created_at,
        delivered_at=None)


class OutboxBus:
    """A bus whose ``publish`` first writes the event's webhook deliveries.

    The PBX publishes through it; subscribers use the bus underneath. Each process
    writes only what it publishes itself, so with a shared bus (Redis) an event is
    written once, not once per process.
    """

    def __init__(self, bus: EventBus, outbox: Outbox) -> None:
        self._bus = bus
        self._outbox = outbox
        # Set once the latest publish has handed its event to the bus: events reach
        # the bus in the order they were published, though only some wait for the
        # outbox. Only the hand-over is ordered, not its completion: a bus that awaits
        # I/O in publish still takes several events at once.
        self._last: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Nothing: the server starts and closes the bus underneath itself."""

    async def close(self) -> None:
        """Nothing: see ``start``."""

    async def publish(self, event: Event) -> None:
        before, handed = self._last, asyncio.get_running_loop().create_future()
        self._last = handed
        try:
            try:
                await self._outbox.record(event)  # queued at once, in publication order
            except asyncio.CancelledError:
                raise
            except Exception:  # logged by the outbox; the live stream still gets it
                pass
            if before is not None:
                await asyncio.shield(before)
            # A task's first step runs in creation order, so the bus sees the events in
            # order even when its publish suspends.
            sent = asyncio.ensure_future(self._bus.publish(event))
        finally:
            handed.set_result(None)
            if self._last is handed:
                self._last = None
        await sent

    def subscribe(self) -> AsyncIterator[Event]:
        return self._bus.subscribe()
