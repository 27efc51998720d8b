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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tongdai.api.hub import Mailbox
from tongdai.appstream.log import AppLog
from tongdai.appstream.record import AppRecord
from tongdai.webhooks.bindings import matches

# Records read from the log per query while replaying.
_PAGE = 1000


class StreamMailbox(Mailbox):
    """A subscriber's queue of websocket messages, each holding up to ``per_message``
    events one per line (1: one event each; more: ``batch=1``).

    Events arrive in runs: a run is one event, or up to ``per_message`` of them already
    joined, built once for every subscriber of a kind. The limit counts events, not
    runs: a client ``limit`` events behind overflows, whatever the batching."""

    def __init__(self, limit: int, *, per_message: int = 1) -> None:
        super().__init__(limit)
        self.per_message = per_message
        self._sizes: deque[int] = deque()  # events in each queued run
        self._queued = 0

    def __len__(self) -> int:
        return self._queued

    def push(self, msg: str) -> bool:
        return self.push_runs((msg,), (1,), 1)

    def push_runs(self, runs: Sequence[str], sizes: Sequence[int], events: int) -> bool:
        """Queue ``runs`` (``sizes[i]`` events in ``runs[i]``, ``events`` in all) in one
        step: the overflow rule of ``push``, one wake-up."""
        if self.overflowed or self.closed:
            return False
        if self._queued + events > self._limit:
            self.overflowed = True
            self._items.clear()
            self._sizes.clear()
            self._queued = 0
            self._wake.set()
            self._finished.set()
            return False
        self._items.extend(runs)
        self._sizes.extend(sizes)
        self._queued += events
        self._wake.set()
        return True

    async def get(self) -> str | None:
        """The next websocket message; None once the mailbox overflowed or was closed."""
        while not self._items and not self.overflowed and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        return self.next_ready()

    def next_ready(self) -> str | None:
        """The next websocket message if one is queued, without waiting: the next run
        and as many of those queued behind it as fit in one message."""
        items, sizes = self._items, self._sizes
        if self.overflowed or self.closed or not items:
            return None
        n = sizes.popleft()
        msg = items.popleft()
        if sizes and n + sizes[0] <= self.per_message:
            parts = [msg]
            while sizes and n + sizes[0] <= self.per_message:
                n += sizes.popleft()
                parts.append(items.popleft())
            msg = "\n".join(parts)
        self._queued -= n
        return msg


def runs(msgs: Sequence[str], per_message: int) -> tuple[list[str], list[int]]:
    """``msgs`` as the runs of a ``per_message`` subscriber, and their sizes."""
    if per_message == 1:
        return list(msgs), [1] * len(msgs)
    out = ["\n".join(msgs[i:i + per_message]) for i in range(0, len(msgs), per_message)]
    return out, [min(per_message, len(msgs) - i) for i in range(0, len(msgs), per_message)]


# A batch of one app's records with each one's message.
Batch = Sequence[tuple[AppRecord, str]]


@dataclass(slots=True)
class Picked:
    """What one kind of subscriber wants of a batch: the (seq, message) of each record,
    and the same messages as runs, built on first use."""

    msgs: list[tuple[int, str]]
    runs: tuple[list[str], list[int]] | None = None


Kind = tuple[tuple[str, ...], frozenset[str] | None, int]


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
    def kind(self) -> Kind:
        """Subscribers of one kind want the same records, in the same messages."""
        return self.bindings, self.devices, self.mailbox.per_message

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
        if not picked.msgs:
            return
        per_message = self.mailbox.per_message
        if floor < batch[0][0].seq:
            # Live, the usual case: the whole batch is new, the kind's runs fit as built.
            if picked.runs is None:
                picked.runs = runs([m for _, m in picked.msgs], per_message)
            self.mailbox.push_runs(*picked.runs, len(picked.msgs))
        else:
            msgs = [m for seq, m in picked.msgs if seq > floor]
            if msgs:
                self.mailbox.push_runs(*runs(msgs, per_message), len(msgs))


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
            picked: dict[Kind, Picked] = {}
            for sub in tuple(self._subs.get(app_id, ())):
                if not ordered:
                    for rec, msg in batch:
                        sub.offer(rec, msg)
                    continue
                mine = picked.get(sub.kind)
                if mine is None:
                    mine = picked[sub.kind] = Picked(
                        [(rec.seq, msg) for rec, msg in batch if sub.wants(rec)])
                sub.offer_batch(batch, mine)

    async def attach(self, *, app_id: str, bindings: tuple[str, ...],
                     devices: frozenset[str] | None, since: int | None,
                     per_message: int = 1) -> Attachment:
        """Subscribe; live messages carry up to ``per_message`` events each."""
        sub = Subscriber(app_id=app_id, bindings=bindings, devices=devices,
                         mailbox=StreamMailbox(self.queue_limit, per_message=per_message))
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
