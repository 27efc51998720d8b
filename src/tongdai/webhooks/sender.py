"""The sender: POSTs pending deliveries, signed, and records what came of them.

Deliveries are taken from the outbox oldest first. Those sharing an endpoint and an
order key (a call, a device) are sent one after the other, each only after the one
before it succeeded; different keys go out concurrently. A failure (no answer within
the timeout, a refused connection, any status but 2xx) rests the endpoint: nothing is
sent to it for ``retry_delay(failures)`` seconds, then the same delivery is tried
first. After ``disable_after`` failures in a row the endpoint is disabled; its
deliveries stay pending until it is enabled again. A delivery is recorded as sent
only after its 2xx: a crash in between sends it again, with the same delivery id.

Fresh deliveries come from the outbox in memory as soon as they are committed
(``take``); the database is read only for what memory does not hold: deliveries left
over from before a start, those of a resting or failed endpoint (retries), those
handed back for waiting too long, and redeliveries. While the database may hold an
endpoint's deliveries that memory does not (``_behind``), its fresh ones are parked
until a read brings those: then both go out in seq order, so a call's order holds.
Whether a read brought them all is judged by the endpoint's state in the read's own
snapshot, not by this node's memory: another node may have rested the endpoint.

An endpoint's failure count and rest are shared with the other nodes through the
database: a record of attempts changes the state stored there rather than writing this
node's over it (``WebhookTables.record_attempts``), and the node then goes by what is
stored; each poll reads the state of every endpoint the node sends to, so a rest set
elsewhere (or an administrator's enable) holds here too, for fresh deliveries as well.

Each delivery has one owner: a delivery being written is claimed (``claim``) before
its commit, so a read of the outbox that sees it before the outbox hands it over
(``take``) leaves it alone; a delivery handed to a group or parked is in ``_busy``,
which every read skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tongdai import __version__, logs
from tongdai.store.errors import StoreError
from tongdai.webhooks.backoff import retry_delay
from tongdai.webhooks.client import Client, HttpError, Timeout
from tongdai.webhooks.guard import Guard, Refused
from tongdai.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from tongdai.webhooks.store import (
    Attempt,
    DeliveryRec,
    EndpointRec,
    EndpointState,
    NewDelivery,
    OutboxRead,
    StoredState,
)

log = logging.getLogger("tongdai.webhooks")

PURGE_INTERVAL = 600.0
# Seconds to get a connection (and its TLS handshake) to a receiver, at most.
CONNECT_TIMEOUT = 5.0
# Seconds outbox rows read but not yet sent (their call's earlier event or their
# endpoint still busy) are kept before they are read again with their endpoint's state.
READY_AGE = 1.0
# Seconds the sender waits to gather work before a database round trip.
BATCH_WINDOW = 0.005


class SenderStore(Protocol):
    async def read_outbox(
        self, *, node: str, now: float, limit: int, exclude: Collection[int] = (),
        skip_endpoints: Collection[str] = (), watch: Collection[str] = (),
    ) -> OutboxRead: ...
    async def record_attempts(self, attempts: Sequence[Attempt],
                              endpoints: Sequence[EndpointState], *,
                              disable_after: int = 100) -> list[StoredState]: ...
    async def purge_deliveries(self, *, delivered_before: float) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How hard the sender tries (settings: TONGDAI_WEBHOOK_*)."""

    timeout: float = 10.0
    retry_base: float = 1.0
    retry_max: float = 600.0
    disable_after: int = 100
    concurrency: int = 64
    retention: float = 7 * 86400.0
    poll: float = 1.0
    batch: int = 500


@dataclass(slots=True)
class _Endpoint:
    """An endpoint as this node knows it: the database's state (read at least once a
    poll, and returned by each record of attempts) and what its attempts did since."""

    endpoint: EndpointRec
    failures: int
    paused_until: float
    disabled: str = ""
    busy: int = 0  # groups in flight (sending, or waiting for their attempts' record)
    sending: int = 0  # groups sending
    # What the attempts since the last record did (EndpointState): a success, seeing a
    # rest until ``seen_until`` when it began; failures after it, the first begun at
    # ``began``.
    dirty: bool = False
    succeeded: bool = False
    seen_until: float = 0.0
    counted: int = 0
    began: float = 0.0
    last_error: str = ""
    # The number of reads of the outbox begun before the last record committed: their
    # snapshot may not hold it.
    recorded: int = 0


def _known(e: EndpointRec) -> _Endpoint:
    return _Endpoint(endpoint=e, failures=e.failures, paused_until=e.paused_until,
                     disabled="" if e.enabled else (e.disabled_reason or "disabled"))


Disabled = Callable[[EndpointRec, int, str], None]


class Sender:
    def __init__(
        self, *, store: SenderStore, node: str, guard: Guard, policy: Policy,
        wall_clock: Callable[[], float], on_disabled: Disabled = lambda e, n, err: None,
    ) -> None:
        self._store = store
        self._node = node
        self._guard = guard
        self._policy = policy
        self._wall = wall_clock
        self._on_disabled = on_disabled
        # One slow receiver holds at most ``_per_endpoint`` requests in flight (below):
        # an origin's pool has room for as many.
        self._client = Client(
            user_agent=f"tongdai-webhooks/{__version__}", tls=ssl.create_default_context(),
            max_per_origin=max(1, policy.concurrency // 4))
        # One slow receiver holds at most this many of the requests in flight, so the
        # others' deliveries still go out while it times out.
        self._per_endpoint = max(1, policy.concurrency // 4)
        self._wake = asyncio.Event()
        self._state: dict[str, _Endpoint] = {}
        self._inflight: set[tuple[str, str]] = set()
        # Groups sending: a group's slot is free once its requests are done, before its
        # attempts are recorded (its order key stays in flight until then).
        self._sending = 0
        # The seqs handed to group tasks and not yet recorded: a read of the outbox
        # skips them (it may predate their commit: they may be sent already).
        self._busy: set[int] = set()
        # The deliveries being written to the outbox (by id: their seq is not known
        # before the commit): the outbox hands them over once committed, so a read
        # that sees them first leaves them alone.
        self._claimed: set[str] = set()
        # Rows read and waiting for a request slot, their order key or their endpoint
        # (seq order); each read of the outbox hands over all it got, so none is read
        # twice while its endpoint can take it.
        self._ready: list[tuple[DeliveryRec, EndpointRec]] = []
        self._ready_since = 0.0
        self._groups: set[asyncio.Task[None]] = set()
        self._results: list[tuple[list[Attempt], str, asyncio.Future[None] | None]] = []
        self._results_wake = asyncio.Event()
        # Endpoints the database may hold pending deliveries of that memory does not
        # (not read, or handed back), each with the number of the first read of the
        # outbox that sees them all: it must start after they were left there.
        self._behind: dict[str, int] = {}
        self._reads = 0  # reads of the outbox started
        # Fresh deliveries of endpoints behind, held until a read catches them up.
        self._parked: dict[str, list[tuple[DeliveryRec, EndpointRec]]] = {}
        self._next_read = 0.0  # a read at least every poll (redeliveries from the CLI)
        # The seqs released while a read is in flight: its snapshot may predate their
        # attempts' commit, so what it returns of them is not taken.
        self._released: set[int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._next_purge = 0.0
        # A stop lets the loops finish the database work they are in: a query cut off by
        # a cancellation leaves its connection to be reset in the pool's error path.
        self._stopping = False
        self.sent = 0  # deliveries that got a 2xx (for tests and the benchmark)

    def wake(self) -> None:
        """New deliveries were written: look now rather than at the next poll."""
        self._wake.set()

    def claim(self, rows: Sequence[NewDelivery]) -> None:
        """Deliveries about to be written to the outbox: ``take`` (or ``unclaim``)
        follows their commit, and until then no read of the outbox sends them."""
        self._claimed.update(r.delivery_id for r in rows)

    def unclaim(self, rows: Sequence[NewDelivery]) -> None:
        """Claimed deliveries whose write failed, or may have: what did commit is the
        database's to give, so their endpoints' fresh deliveries wait for a read."""
        self._claimed.difference_update(r.delivery_id for r in rows)
        for eid in {r.endpoint_id for r in rows}:
            self._left(eid)
        self._wake.set()

    def take(self, rows: Sequence[tuple[DeliveryRec, EndpointRec]]) -> None:
        """Deliveries just committed to the outbox (seq order): sent from memory, unless
        their endpoint's older deliveries wait in the database (then they are read
        with those, in order)."""
        self._claimed.difference_update(d.delivery_id for d, _ in rows)
        if self._stopping or self._task is None:
            return
        now = self._wall()
        fresh: list[tuple[DeliveryRec, EndpointRec]] = []
        read = False
        for d, e in rows:
            eid = d.endpoint_id
            st = self._state.get(eid)
            parked = self._parked.get(eid, ())
            if st is None or len(parked) >= self._policy.batch:
                self._left(eid)  # its state is the database's to give: read, not parked
                read = True
            elif st.disabled or st.paused_until > now:
                # It rests (perhaps by another node's failure, as the last poll found
                # it) or is disabled: read once that is over, not sent now.
                self._left(eid)
            elif eid in self._behind:
                self._parked.setdefault(eid, []).append((d, e))
                self._busy.add(d.seq)
            else:
                fresh.append((d, e))
        if fresh:
            self._queue_ready(fresh, now)
            self._start_ready(now)
        if read:
            self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._recorder = asyncio.create_task(self._record_loop(), name="webhook-recorder")
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task  # the round it is in, then it returns
        for t in tuple(self._groups):
            t.cancel()  # requests in flight: no database work in them
        for t in tuple(self._groups):
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._results_wake.set()
        if self._recorder is not None:
            await self._recorder
        # Attempts that finished before the stop are kept, so they are not sent again.
        with contextlib.suppress(Exception):
            await self._record_batch()
        await self._client.aclose()
        self._task = self._recorder = None

    # Dispatch -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                now = self._wall()
                if self._behind or now >= self._next_read:
                    await self._dispatch()
                else:
                    self._start_ready(now)
                await self._purge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logs.event(log, "webhook.sender_error", level=logging.WARNING,
                           error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_wait())
            if self._stopping:
                return
            if self._behind:
                # Let more completions and deliveries left in the database arrive: one
                # read of the outbox then serves them all.
                await asyncio.sleep(BATCH_WINDOW)

    def _idle_wait(self) -> float:
        """Until the next poll, or sooner when a resting endpoint's deliveries wait in
        the database: until its rest is over (nothing else wakes the sender then)."""
        now, wait = self._wall(), self._policy.poll
        for eid in self._behind:
            st = self._state.get(eid)
            if st is not None and not st.disabled and st.paused_until > now:
                wait = min(wait, st.paused_until - now)
        return wait

    async def _dispatch(self) -> None:
        now = self._wall()
        self._start_ready(now)
        if self._sending >= self._policy.concurrency:
            return
        # Only what can be sent now is read: rows of endpoints at their share would be
        # read again and again for nothing. (Resting and disabled endpoints are the
        # database's to judge: an administrator may have enabled one meanwhile.)
        # (Except those behind: until they are read, their fresh deliveries are parked.)
        full = [eid for eid, st in self._state.items()
                if st.sending >= self._per_endpoint and eid not in self._behind]
        # A poll also brings back the state of every endpoint this node sends to:
        # another node may have rested it (its fresh deliveries then wait, ``take``),
        # or an administrator enabled it. Reads for endpoints behind need only theirs.
        watch = tuple(self._state) if now >= self._next_read else tuple(self._behind)
        self._reads += 1
        read, self._released = self._reads, set()
        self._next_read = now + self._policy.poll
        try:
            got = await self._store.read_outbox(
                node=self._node, now=now, limit=self._policy.batch,
                exclude=tuple(self._busy), skip_endpoints=full, watch=watch)
            released = self._released
        finally:
            self._released = None
        caught_up = (self._caught_up(read, now, got.endpoints, skipped=set(full))
                     if len(got.rows) < self._policy.batch else ())
        # Taken from memory, sent meanwhile, or about to be handed over: not twice.
        rows = [(d, e) for d, e in got.rows if d.seq not in self._busy
                and d.seq not in released and d.delivery_id not in self._claimed]
        for e in got.endpoints.values():
            self._refresh(e, read)
        for eid in caught_up:
            rows.extend(self._parked.pop(eid, ()))
        if not rows:
            return
        rows.sort(key=lambda r: r[0].seq)
        self._queue_ready(rows, now)
        self._start_ready(now)

    def _queue_ready(self, rows: Sequence[tuple[DeliveryRec, EndpointRec]],
                     now: float) -> None:
        if not self._ready:
            self._ready_since = now
        self._ready.extend(rows)
        self._busy.update(d.seq for d, _ in rows)

    def _caught_up(self, read: int, now: float, endpoints: Mapping[str, EndpointRec], *,
                   skipped: Collection[str]) -> list[str]:
        """Read number ``read`` got every pending delivery of the endpoints it could
        (not skipped; enabled and not resting in the read's snapshot, ``endpoints``):
        those left behind before it began are all in memory now. Returns them.

        This node's memory cannot judge it: another node may have rested or disabled
        the endpoint since (the read then left its rows out while memory says ready).
        """
        done = []
        for eid, first in tuple(self._behind.items()):
            if first > read or eid in skipped:
                continue
            e = endpoints.get(eid)  # None: removed, and its deliveries with it
            if e is not None and (not e.enabled or e.paused_until > now):
                continue  # the read did not include its rows
            del self._behind[eid]
            done.append(eid)
        return done

    def _refresh(self, e: EndpointRec, read: int) -> None:
        """An endpoint as read number ``read`` found it in the database."""
        st = self._state.get(e.endpoint_id)
        if st is None:
            self._state[e.endpoint_id] = _known(e)
            return
        st.endpoint = e
        # The read may predate this node's own last record, or attempts not recorded
        # yet: then only a longer rest (another node's) or a disable is taken from it.
        current = st.busy == 0 and not st.dirty and read > st.recorded
        self._adopt(st, failures=e.failures, paused_until=e.paused_until,
                    disabled="" if e.enabled else (e.disabled_reason or "disabled"),
                    current=current)

    @staticmethod
    def _adopt(st: _Endpoint, *, failures: int, paused_until: float, disabled: str,
               current: bool) -> None:
        if current:
            st.failures, st.paused_until, st.disabled = failures, paused_until, disabled
            return
        if paused_until > st.paused_until:
            st.failures = max(st.failures, failures)
            st.paused_until = paused_until
        if disabled:
            st.disabled = disabled

    def _left(self, endpoint_id: str) -> None:
        """Pending deliveries of this endpoint are in the database only."""
        self._behind[endpoint_id] = self._reads + 1

    def _release(self, seqs: Collection[int]) -> None:
        self._busy.difference_update(seqs)
        if self._released is not None:
            self._released.update(seqs)

    def _start_ready(self, now: float) -> None:
        """Start a group for each order key of the ready rows that can go now; keep the
        rows that wait (their key or endpoint busy, no request slot free)."""
        if self._ready and now - self._ready_since > READY_AGE:
            self._unready(self._ready)  # read again: the endpoints' state may have moved
            self._ready = []
        groups: dict[tuple[str, str], tuple[EndpointRec, list[DeliveryRec]]] = {}
        waiting: list[tuple[DeliveryRec, EndpointRec]] = []
        dropped: list[tuple[DeliveryRec, EndpointRec]] = []
        for d, e in self._ready:
            key = (d.endpoint_id, d.order_key)
            group = groups.get(key)
            if group is not None:
                group[1].append(d)  # behind its key's earlier rows, in the same group
                continue
            st = self._state[d.endpoint_id]
            if st.paused_until > now or st.disabled:
                dropped.append((d, e))  # read again once the endpoint may be sent to
            elif (key in self._inflight or st.sending >= self._per_endpoint
                    or self._sending >= self._policy.concurrency):
                waiting.append((d, e))
            else:
                groups[key] = (e, [d])
                self._inflight.add(key)
                st.busy += 1
                st.sending += 1
                self._sending += 1
        self._ready = waiting
        self._unready(dropped)
        for key, (endpoint, deliveries) in groups.items():
            task = asyncio.create_task(self._send_group(key, endpoint, deliveries))
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    def _unready(self, rows: Sequence[tuple[DeliveryRec, EndpointRec]]) -> None:
        for eid in {d.endpoint_id for d, _ in rows}:
            self._left(eid)
        self._release([d.seq for d, _ in rows])

    async def _send_group(self, key: tuple[str, str], endpoint: EndpointRec,
                          deliveries: list[DeliveryRec]) -> None:
        st = self._state[key[0]]
        attempts: list[Attempt] = []
        sending = True
        recorded = False
        try:
            for d in deliveries:
                if st.paused_until > self._wall() or st.disabled:
                    break  # another group failed meanwhile: the endpoint rests
                seen = st.paused_until
                attempt = await self._attempt(d, endpoint)
                attempts.append(attempt)
                self._account(st, endpoint, attempt, seen=seen)
                if not attempt.ok:
                    break  # the rest of this call waits behind the failed delivery
            self._sent(st)
            sending = False
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._results.append((attempts, key[0], done))
            self._results_wake.set()
            await done
            recorded = True
        except asyncio.CancelledError:
            if attempts and not any(a is attempts for a, _, _ in self._results):
                self._results.append((attempts, key[0], None))
            raise
        except Exception as exc:
            logs.event(log, "webhook.record_failed", level=logging.ERROR,
                       endpoint_id=key[0], error=type(exc).__name__)
        finally:
            if sending:
                self._sent(st)
            self._inflight.discard(key)
            if not (recorded and len(attempts) == len(deliveries)
                    and all(a.ok for a in attempts)):
                self._left(key[0])  # the rest are read again, after the endpoint's rest
            self._release([d.seq for d in deliveries])
            st.busy -= 1
            self._wake.set()

    def _sent(self, st: _Endpoint) -> None:
        """A group's requests are done: its slot may serve another group."""
        st.sending -= 1
        self._sending -= 1
        self._wake.set()

    def _account(self, st: _Endpoint, endpoint: EndpointRec, attempt: Attempt, *,
                 seen: float) -> None:
        """What an attempt does to its endpoint, here at once, in the database at the
        next record (``seen``: the rest this node knew of when the attempt began)."""
        if attempt.ok:
            if st.failures or st.counted:
                st.failures, st.counted, st.dirty = 0, 0, True
                st.succeeded, st.seen_until = True, seen
            return
        st.last_error = attempt.error
        if attempt.at < st.paused_until:
            return  # sent before the endpoint's rest began: one failure, not two
        p = self._policy
        st.failures += 1
        st.paused_until = attempt.at + retry_delay(st.failures, base=p.retry_base,
                                                   cap=p.retry_max)
        st.began = attempt.began if st.counted == 0 else min(st.began, attempt.began)
        st.counted += 1
        st.dirty = True
        logs.event(log, "webhook.failed", level=logging.INFO,
                   endpoint_id=endpoint.endpoint_id, app_id=endpoint.app_id,
                   failures=st.failures, error=attempt.error,
                   retry_in=round(st.paused_until - attempt.at, 1))

    async def _attempt(self, d: DeliveryRec, endpoint: EndpointRec) -> Attempt:
        body = d.body.encode()
        error = ""
        began = self._wall()
        try:
            target = await self._guard.target(endpoint.url)
            timestamp = int(self._wall())
            headers = [
                ("Content-Type", "application/json"),
                (SIGNATURE_HEADER, sign(endpoint.secret.reveal(), timestamp, body)),
                (EVENT_HEADER, d.event_type),
                (DELIVERY_HEADER, d.delivery_id),
            ]
            # Redirects are not followed: a 3xx is a failure (a redirect could lead past
            # the address check).
            status = await self._client.post(
                target.url, body, host=target.host_header, server_name=target.server_name,
                headers=headers, within=self._policy.timeout,
                connect_within=min(CONNECT_TIMEOUT, self._policy.timeout))
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except Refused as exc:
            error = str(exc)
        except Timeout:
            error = f"no answer within {self._policy.timeout:g} s"
        except HttpError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except StoreError as exc:  # the secret does not open with this store key
            error = str(exc)
        return Attempt(seq=d.seq, ok=not error, at=self._wall(), error=error[:255],
                       began=began)

    # Recording ------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while not self._stopping:
            await self._results_wake.wait()
            if not self._stopping:
                await asyncio.sleep(BATCH_WINDOW)  # one transaction for more attempts
            self._results_wake.clear()
            await self._record_batch()

    async def _record_batch(self) -> None:
        batch, self._results = self._results, []
        if not batch:
            return
        attempts = [a for group, _, _ in batch for a in group]
        states = []
        for eid in {eid for _, eid, _ in batch}:
            st = self._state.get(eid)
            if st is None or not st.dirty:
                continue
            states.append(EndpointState(
                endpoint_id=eid, ok=st.succeeded, seen_until=st.seen_until,
                failures=st.counted, paused_until=st.paused_until, began=st.began,
                error=st.last_error))
            st.dirty, st.succeeded, st.counted = False, False, 0
        error: Exception | None = None
        stored: list[StoredState] = []
        try:
            stored = await self._store.record_attempts(
                attempts, states, disable_after=self._policy.disable_after)
        except Exception as exc:
            error = exc
        for _, _, fut in batch:
            if fut is None or fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        if error is not None:
            return
        self.sent += sum(1 for a in attempts if a.ok)
        for got in stored:
            st = self._state.get(got.endpoint_id)
            if st is None:
                continue
            # The database's count and rest include other nodes' attempts, and an
            # administrator's enable: this node goes by them (by a longer rest only,
            # if it has attempts of its own to record since).
            self._adopt(st, failures=got.failures, paused_until=got.paused_until,
                        disabled="" if got.enabled else (got.disabled_reason or "disabled"),
                        current=not st.dirty)
            st.recorded = self._reads
            if got.disabled_now:
                self._on_disabled(st.endpoint, got.failures, st.last_error)

    async def _purge(self) -> None:
        now = self._wall()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        await self._store.purge_deliveries(delivered_before=now - self._policy.retention)
