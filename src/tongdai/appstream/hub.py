"""Fan-out of an app's numbered events to its websocket subscribers.

A subscriber names the app, its bindings (``call.*``) and optionally devices. While
it attaches, live records are held back; the log gives what it missed after
``since``; then the held records numbered above what it was given follow, so
replay and live join without a hole or a repeat. Delivery is a non-blocking append to
the subscriber's bounded mailbox (``api/hub.Mailbox``): a slow client overflows and is
disconnected, nobody waits for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from tongdai.api.hub import Mailbox
from tongdai.appstream.log import AppLog
from tongdai.appstream.record import AppRecord
from tongdai.webhooks.bindings import matches

# Records read from the log per query while replaying.
_PAGE = 1000


class StreamMailbox(Mailbox):
    def push_many(self, msgs: Sequence[str]) -> bool:
        """``push`` of each of ``msgs`` in one step: the same overflow rule (the client
        ``limit`` behind), one wake-up."""
        if self.overflowed or self.closed:
            return False
        if len(self._items) + len(msgs) > self._limit:
            self.overflowed = True
            self._items.clear()
            self._wake.set()
            self._finished.set()
            return False
        self._items.extend(msgs)
        self._wake.set()
        return True

    def take_ready(self, limit: int) -> list[str]:
        """Up to ``limit`` more messages already queued, without waiting."""
        if self.overflowed or self.closed:
            return []
        items = self._items
        if len(items) <= limit:
            out = list(items)
            items.clear()
            return out
        return [items.popleft() for _ in range(limit)]


# A batch of one app's records with each one's message, and the (seq, message) of those
# a kind of subscriber wants.
Batch = Sequence[tuple[AppRecord, str]]
Picked = Sequence[tuple[int, str]]


class Subscriber:
    __slots__ = ("app_id", "bindings", "devices", "floor", "held", "mailbox")

    def __init__(self, *, app_id: str, bindings: tuple[str, ...],
                 devices: frozenset[str] | None, mailbox: StreamMailbox) -> None:
        self.app_id = app_id
        self.bindings = bindings
        self.devices = devices
        self.mailbox = mailbox
        self.floor = 0  # the highest number this subscriber has been given (or skipped)
        self.held: list[tuple[AppRecord, str]] | None = []  # None once live

    @property
    def kind(self) -> tuple[tuple[str, ...], frozenset[str] | None]:
        """Subscribers of one kind want the same records."""
        return self.bindings, self.devices

    def wants(self, rec: AppRecord) -> bool:
        if not matches(self.bindings, rec.type):
            return False
        return self.devices is None or not self.devices.isdisjoint(rec.devices)

    def offer(self, rec: AppRecord, msg: str) -> None:
        if self.held is not None:
            self.held.append((rec, msg))
        elif rec.seq > self.floor:
            self.floor = rec.seq
            if self.wants(rec):
                self.mailbox.push(msg)

    def offer_batch(self, batch: Batch, picked: Picked) -> None:
        """``offer`` of each record of ``batch`` (numbered in increasing order), given
        ``picked``: those of them this subscriber's kind wants."""
        if self.held is not None:
            self.held.extend(batch)
            return
        floor, last = self.floor, batch[-1][0].seq
        if last <= floor:
            return
        self.floor = last
        msgs = [m for seq, m in picked if seq > floor]
        if msgs:
            self.mailbox.push_many(msgs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    subscriber: Subscriber
    last_seq: int  # the app's last number when the subscriber attached
    gap: tuple[int, int] | None  # numbers missed that the log no longer has
    replay: tuple[str, ...]


class AppStreamHub:
    def __init__(self, *, log: AppLog, queue_limit: int, max_replay: int = 100_000) -> None:
        self.log = log
        self.queue_limit = queue_limit
        self.max_replay = max_replay
        self._subs: dict[str, set[Subscriber]] = {}
        self.closed = False
        log.listen(self.deliver)

    def deliver(self, records: Sequence[AppRecord]) -> None:
        by_app: dict[str, list[AppRecord]] = {}
        for rec in records:
            if rec.app_id in self._subs:
                by_app.setdefault(rec.app_id, []).append(rec)
        for app_id, recs in by_app.items():
            # Each message built once, shared by every subscriber; each kind of
            # subscriber (bindings, devices) filters the batch once, not each one.
            batch = [(rec, rec.message()) for rec in recs]
            ordered = all(a.seq < b.seq for a, b in itertools.pairwise(recs))
            picked: dict[object, Picked] = {}
            for sub in tuple(self._subs.get(app_id, ())):
                if not ordered:
                    for rec, msg in batch:
                        sub.offer(rec, msg)
                    continue
                mine = picked.get(sub.kind)
                if mine is None:
                    mine = picked[sub.kind] = [(rec.seq, msg) for rec, msg in batch
                                               if sub.wants(rec)]
                sub.offer_batch(batch, mine)

    async def attach(self, *, app_id: str, bindings: tuple[str, ...],
                     devices: frozenset[str] | None, since: int | None) -> Attachment:
        sub = Subscriber(app_id=app_id, bindings=bindings, devices=devices,
                         mailbox=StreamMailbox(self.queue_limit))
        if self.closed:
            sub.mailbox.close()
        self._subs.setdefault(app_id, set()).add(sub)
        try:
            first, last = await self.log.bounds(app_id)
            replay: list[str] = []
            gap: tuple[int, int] | None = None
            floor = last
            if since is not None and since < last:
                after = since
                if first > since + 1:
                    gap = (since + 1, first - 1)
                    after = first - 1
                while after < last and len(replay) < self.max_replay:
                    page = await self.log.read(app_id, after, _PAGE)
                    if not page:
                        break
                    for rec in page:
                        if sub.wants(rec):
                            replay.append(rec.message())
                    after = page[-1].seq
                floor = max(last, after)
            held, sub.held = sub.held or [], None
            sub.floor = floor
            for rec, msg in held:
                sub.offer(rec, msg)
        except BaseException:
            self.detach(sub)
            raise
        return Attachment(subscriber=sub, last_seq=last, gap=gap, replay=tuple(replay))

    def detach(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.app_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.app_id]

    def close(self) -> None:
        self.closed = True
        for subs in self._subs.values():
            for sub in subs:
                sub.mailbox.close()

    def subscribers(self, app_id: str) -> int:
        return len(self._subs.get(app_id, ()))
