"""Webhooks assembled: the outbox the PBX publishes through, and the sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from tongdai import logs
from tongdai.bus.events import Event
from tongdai.bus.protocol import EventBus
from tongdai.settings import Settings
from tongdai.webhooks.guard import Guard
from tongdai.webhooks.outbox import Outbox, OutboxBus
from tongdai.webhooks.sender import Policy, Sender
from tongdai.webhooks.store import EndpointRec, WebhookTables

log = logging.getLogger("tongdai.webhooks")


def policy(settings: Settings) -> Policy:
    return Policy(
        timeout=settings.webhook_timeout, retry_base=settings.webhook_retry_base,
        retry_max=settings.webhook_retry_max, disable_after=settings.webhook_disable_after,
        concurrency=settings.webhook_concurrency,
        retention=settings.webhook_retention_days * 86400.0,
    )


class WebhookService:
    """Publish through ``bus``: each event is in the outbox before it is on the bus."""

    def __init__(self, *, store: WebhookTables, bus: EventBus, settings: Settings, node: str,
                 wall_clock: Callable[[], float]) -> None:
        self._wall = wall_clock
        self._store = store
        self._node = node
        self.sender = Sender(
            store=store, node=node, guard=Guard(allow_private=settings.webhook_allow_private),
            policy=policy(settings), wall_clock=wall_clock, on_disabled=self._disabled)
        self.outbox = Outbox(store=store, node=node, handoff=self.sender)
        self.bus = OutboxBus(bus, self.outbox)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.outbox.start()
        await self.sender.start()

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.outbox.stop()
        await self.sender.stop()

    async def backlog(self) -> tuple[int, float | None]:
        """This node's deliveries waiting to be sent, and the oldest one's creation time."""
        return await self._store.webhook_backlog(self._node)

    @property
    def delivered(self) -> int:
        """Deliveries answered 2xx since start."""
        return self.sender.sent

    def _disabled(self, endpoint: EndpointRec, failures: int, error: str) -> None:
        # The URL's path or query may carry the receiver's own token: log the host only.
        host = urlsplit(endpoint.url).hostname or ""
        logs.event(log, "webhook.disabled", level=logging.WARNING, app_id=endpoint.app_id,
                   endpoint_id=endpoint.endpoint_id, host=host, failures=failures,
                   error=error)
        event = Event(type="webhook.disabled", app_id=endpoint.app_id, sip_users=(),
                      ts=self._wall(), data={
                          "endpoint_id": endpoint.endpoint_id, "url": endpoint.url,
                          "failures": failures, "last_error": error})
        task = asyncio.create_task(self._announce(event), name="webhook-disabled")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, event: Event) -> None:
        # Stop queueing for the endpoint at once, not at the next poll for changes.
        await self.outbox.refresh()
        await self.bus.publish(event)
