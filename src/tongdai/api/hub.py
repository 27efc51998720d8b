"""Fan-out of call and device events to websocket clients, per device, with replay.

The hub subscribes to the bus once. For each device (``app_id``, ``sip_user``) it
numbers the events addressed to that device 1, 2, 3, ... (the *seq*), keeps the last
``retain`` of them, and hands each to the mailboxes of the device's connected
clients. A reconnecting client names the last seq it saw and is first given what it
missed from the retained window, or told explicitly (a ``gap``) what is gone.

Numbering lives in memory: it restarts at 1 when the process restarts. Every hub has
a random ``epoch`` that the hello message carries, so a client can tell a restart
from a quiet period.

Each client's mailbox is bounded; a client that falls ``queue_limit`` messages behind
is marked overflowed and disconnected by its websocket task. Nobody waits on a slow
client: delivery is a non-blocking append.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tongdai.bus import Event, EventBus

log = logging.getLogger("tongdai.api.hub")

CALL_TYPES = frozenset({"call.ringing", "call.answered", "call.ended"})
DEVICE_TYPES = frozenset({"device.registered", "device.unregistered"})
EVENT_TYPES = CALL_TYPES | DEVICE_TYPES


class Mailbox:
    """A bounded queue of serialised messages for one client."""

    def __init__(self, limit: int) -> None:
        self._items: deque[str] = deque()
        self._limit = limit
        self._wake = asyncio.Event()
        self._finished = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def push(self, msg: str) -> bool:
        """Append ``msg``; False (and overflowed) if the client is ``limit`` behind."""
        if self.overflowed or self.closed:
            return False
        if len(self._items) >= self._limit:
            self.overflowed = True
            self._items.clear()  # nobody will read them: free the memory now
            self._wake.set()
            self._finished.set()
            return False
        self._items.append(msg)
        self._wake.set()
        return True

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._finished.set()

    async def finished(self) -> None:
        """Return once the mailbox has overflowed or been closed."""
        await self._finished.wait()

    async def get(self) -> str | None:
        """The next message; None once the mailbox overflowed or was closed."""
        while not self._items and not self.overflowed and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        if self.overflowed or self.closed:
            return None
        return self._items.popleft()


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """What a newly connected client gets before live messages.

    ``last_seq`` is the device's latest seq at the moment of attaching; ``gap`` is
    the inclusive range of seqs the client missed and the hub no longer has;
    ``replay`` the retained messages after ``since``, in order.
    """

    mailbox: Mailbox
    last_seq: int
    gap: tuple[int, int] | None
    replay: tuple[str, ...]


class _Device:
    __slots__ = ("mailboxes", "retained", "sent", "seq")

    def __init__(self, retain: int) -> None:
        self.seq = 0
        self.retained: deque[tuple[int, str]] = deque(maxlen=retain)
        self.mailboxes: set[Mailbox] = set()
        # call_id -> event types already sent for it; bounded, oldest calls forgotten.
        self.sent: OrderedDict[str, set[str]] = OrderedDict()


class EventHub:
    def __init__(
        self, *, bus: EventBus, retain: int = 1000, queue_limit: int = 1000,
        remember_calls: int = 4096,
    ) -> None:
        self.bus = bus
        self.retain = retain
        self.queue_limit = queue_limit
        self.remember_calls = remember_calls
        self.epoch = secrets.token_hex(8)
        self._devices: dict[tuple[str, str], _Device] = {}
        self._task: asyncio.Task[None] | None = None
        self._stream: AsyncIterator[Event] | None = None
        self.closed = False

    # Lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Subscribe to the bus (now, so nothing published after this is missed)."""
        if self._task is not None:
            return
        self._stream = self.bus.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stream))

    async def aclose(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()
        for dev in self._devices.values():
            for mb in dev.mailboxes:
                mb.close()

    async def __aenter__(self) -> EventHub:
        self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self, stream: AsyncIterator[Event]) -> None:
        async for event in stream:
            try:
                self.handle(event)
            except Exception:
                # One malformed event must not stop every device's stream.
                log.exception("dropped event %s for app %s", event.type, event.app_id)

    # Fan-out ---------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Number ``event`` for each device it names and deliver it."""
        if event.type not in EVENT_TYPES:
            return
        call_id = event.data.get("call_id") if event.type in CALL_TYPES else None
        data_json = json.dumps(event.data, separators=(",", ":"), default=str)
        type_json = json.dumps(event.type)
        ts_json = json.dumps(event.ts)
        for sip_user in dict.fromkeys(event.sip_users):
            dev = self._device(event.app_id, sip_user)
            if isinstance(call_id, str) and not self._first(dev, call_id, event.type):
                continue
            dev.seq += 1
            # Built by hand: the data part is shared by every device the event names.
            msg = (f'{{"type":{type_json},"seq":{dev.seq},"ts":{ts_json},'
                   f'"data":{data_json}}}')
            dev.retained.append((dev.seq, msg))
            for mb in tuple(dev.mailboxes):
                if not mb.push(msg):
                    dev.mailboxes.discard(mb)

    def _first(self, dev: _Device, call_id: str, etype: str) -> bool:
        # Each call event type reaches a device once, and nothing after call.ended:
        # the ended event is final (duplicates from retried hangups are dropped).
        sent = dev.sent.get(call_id)
        if sent is None:
            sent = dev.sent[call_id] = set()
            while len(dev.sent) > self.remember_calls:
                dev.sent.popitem(last=False)
        if etype in sent or "call.ended" in sent:
            return False
        sent.add(etype)
        return True

    def _device(self, app_id: str, sip_user: str) -> _Device:
        key = (app_id, sip_user)
        dev = self._devices.get(key)
        if dev is None:
            dev = self._devices[key] = _Device(self.retain)
        return dev

    # Clients ---------------------------------------------------------------

    def last_seq(self, app_id: str, sip_user: str) -> int:
        dev = self._devices.get((app_id, sip_user))
        return dev.seq if dev is not None else 0

    def attach(self, app_id: str, sip_user: str, since: int | None) -> Attachment:
        """Register a client of the device; ``since`` is the last seq it saw.

        A ``since`` beyond the device's latest seq cannot come from this epoch (the
        server restarted), so it is treated as 0: the client gets all that is retained.
        """
        dev = self._device(app_id, sip_user)
        mb = Mailbox(self.queue_limit)
        if self.closed:
            mb.close()
        else:
            dev.mailboxes.add(mb)
        if since is None:
            return Attachment(mailbox=mb, last_seq=dev.seq, gap=None, replay=())
        if since > dev.seq:
            since = 0
        first_kept = dev.retained[0][0] if dev.retained else dev.seq + 1
        gap = (since + 1, first_kept - 1) if since + 1 < first_kept else None
        replay = tuple(m for s, m in dev.retained if s > since)
        return Attachment(mailbox=mb, last_seq=dev.seq, gap=gap, replay=replay)

    def detach(self, app_id: str, sip_user: str, mailbox: Mailbox) -> None:
        dev = self._devices.get((app_id, sip_user))
        if dev is not None:
            dev.mailboxes.discard(mailbox)

    def stats(self) -> dict[str, Any]:
        return {
            "devices": len(self._devices),
            "clients": sum(len(d.mailboxes) for d in self._devices.values()),
            "epoch": self.epoch,
        }
