"""The webhook tables: endpoints, and the outbox of deliveries (a ``SqlStore`` part).

A delivery is written ``pending`` in the transaction that records its event, and
becomes ``delivered`` when its endpoint answered 2xx. Deliveries are never dropped for
failing: the endpoint rests between attempts (``backoff.py``) and is disabled after
too many failures in a row; its deliveries wait, and go out once it is enabled again.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Double,
    Row,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from tongdai.store.engine import Database, rowcount
from tongdai.store.errors import Conflict, NotFound
from tongdai.store.models import App, ConfigVersion
from tongdai.store.sealing import Sealed, SecretBox
from tongdai.webhooks.rows import WebhookDeliveryRow, WebhookEndpointRow

PENDING = "pending"
DELIVERED = "delivered"
STATUSES = (PENDING, DELIVERED)
MAX_ENDPOINTS_PER_APP = 16
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRec:
    endpoint_id: str
    app_id: str
    url: str
    events: tuple[str, ...]
    secret: Sealed
    enabled: bool
    failures: int
    paused_until: float
    disabled_reason: str
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDelivery:
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    order_key: str
    body: str
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRec:
    seq: int
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    order_key: str
    body: str
    status: str
    attempts: int
    last_error: str
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one attempt at a delivery came to."""

    seq: int
    ok: bool
    at: float  # when it ended
    error: str = ""
    began: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointState:
    """What one node's attempts since it last recorded did to an endpoint: applied to
    the state the database holds, which other nodes and administrators change too.

    ``ok``: one of them succeeded, before the ``failures`` (if any): the failure count
    and the rest are cleared, unless the database's rest is longer than
    ``seen_until``, the longest this node knew of (another node rested it since).
    ``failures``: failed attempts after that, each the start of a rest: added to the
    count, and the rest extended to ``paused_until``, unless an administrator enabled
    the endpoint after the first of them ``began``.
    """

    endpoint_id: str
    ok: bool = False
    seen_until: float = 0.0
    failures: int = 0
    paused_until: float = 0.0
    began: float = 0.0
    error: str = ""  # the last failure's


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredState:
    """An endpoint's state as the database holds it once attempts were recorded."""

    endpoint_id: str
    failures: int
    paused_until: float
    enabled: bool
    disabled_reason: str
    disabled_now: bool = False  # this record disabled it (announce it: once)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRead:
    """What one read of the outbox got: pending deliveries with their endpoints, and
    the endpoints the reader asked to watch, all from one snapshot."""

    rows: Sequence[tuple[DeliveryRec, EndpointRec]]
    endpoints: Mapping[str, EndpointRec]  # by id; a removed endpoint is absent


def new_endpoint_id() -> str:
    return "wh_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def new_delivery_id() -> str:
    return "whd_" + secrets.token_hex(16)


def _no_endpoint(endpoint_id: str) -> NotFound:
    return NotFound(f"webhook {endpoint_id!r} does not exist (see tongdai webhook list)")


def _delivery(r: WebhookDeliveryRow) -> DeliveryRec:
    return DeliveryRec(
        seq=r.seq, delivery_id=r.delivery_id, endpoint_id=r.endpoint_id, event_id=r.event_id,
        event_type=r.event_type, order_key=r.order_key, body=r.body, status=r.status,
        attempts=r.attempts, last_error=r.last_error, created_at=r.created_at,
        delivered_at=r.delivered_at,
    )


# Executed many times per statement (one parameter set per attempt): built once.
_DELIVERED = (update(WebhookDeliveryRow).where(WebhookDeliveryRow.seq == bindparam("s"))
              .values(status=DELIVERED, delivered_at=bindparam("at"), last_error="",
                      attempts=WebhookDeliveryRow.attempts + 1))
_FAILED = (update(WebhookDeliveryRow).where(WebhookDeliveryRow.seq == bindparam("s"))
           .values(last_error=bindparam("err"), attempts=WebhookDeliveryRow.attempts + 1))
_ADD = insert(WebhookDeliveryRow).returning(WebhookDeliveryRow.seq,
                                            sort_by_parameter_order=True)
_ADD_COLUMNS = ("delivery_id", "endpoint_id", "event_id", "event_type", "order_key", "node",
                "body", "status", "attempts", "last_error", "created_at", "delivered_at")
# Rows per INSERT on SQLite: 13 parameters each, well below its limit of 32,766.
_SQLITE_CHUNK = 500
_LAST_SEQ = select(func.max(WebhookDeliveryRow.seq))
# SQLite's INSERT of the outbox up to its VALUES, and one row's placeholders (seq first).
_SQLITE_INSERT = (f"INSERT INTO {WebhookDeliveryRow.__tablename__} "
                  f"({', '.join(('seq', *_ADD_COLUMNS))}) VALUES ")
_SQLITE_ROW = "(" + ", ".join("?" * (len(_ADD_COLUMNS) + 1)) + ")"
_E = WebhookEndpointRow
_P = bindparam("p", type_=Double)
# A success: failures forgotten and the rest over, unless another node rested the
# endpoint for longer than this node knew (its rest stands).
_SUCCEEDED = (update(_E).where(_E.endpoint_id == bindparam("e"),
                               _E.paused_until <= bindparam("seen"))
              .values(failures=0, paused_until=0.0))
# Failures: counted on top of what the database holds (other nodes' too), the rest the
# longer of the stored one and this node's; not if the endpoint was enabled since the
# first of them began (an administrator's enable is not undone).
_FAILED_ENDPOINT = (update(_E).where(_E.endpoint_id == bindparam("e"),
                                     _E.enabled_at <= bindparam("began"))
                    .values(failures=_E.failures + bindparam("n"),
                            paused_until=case((_E.paused_until > _P, _E.paused_until),
                                              else_=_P)))
_DISABLE = (update(_E).where(_E.endpoint_id == bindparam("e"), _E.enabled.is_(True))
            .values(enabled=False, disabled_reason=bindparam("why")))
_BUMP_CONFIG = (update(ConfigVersion).where(ConfigVersion.id == 1)
                .values(version=ConfigVersion.version + 1))


def _add_sqlite(conn: Connection, values: Sequence[tuple[object, ...]]) -> list[int]:
    """Insert rows with the next seqs, in list order, one statement a chunk.

    The transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE), so the
    numbers after the largest seq are this writer's to give. One multi-row INSERT runs
    in one step of the database, where an executemany (or RETURNING) takes a step per
    row, and each step gives the interpreter lock to the event loop's thread and waits
    to get it back: on a busy loop, milliseconds a row.
    """
    first = int(conn.scalar(_LAST_SEQ) or 0) + 1
    seqs = list(range(first, first + len(values)))
    for at in range(0, len(values), _SQLITE_CHUNK):
        chunk = values[at:at + _SQLITE_CHUNK]
        marks = ", ".join([_SQLITE_ROW] * len(chunk))
        params = tuple(x for seq, v in zip(seqs[at:at + len(chunk)], chunk, strict=True)
                       for x in (seq, *v))
        conn.exec_driver_sql(_SQLITE_INSERT + marks, params)
    return seqs


def _delivered_sqlite(conn: Connection, ok: Sequence[Mapping[str, Any]]) -> None:
    """``_DELIVERED`` for each of ``ok``, one statement a chunk (see ``_add_sqlite``)."""
    table = WebhookDeliveryRow.__tablename__
    for at in range(0, len(ok), _SQLITE_CHUNK):
        chunk = ok[at:at + _SQLITE_CHUNK]
        whens = " ".join(["WHEN ? THEN ?"] * len(chunk))
        marks = ", ".join("?" * len(chunk))
        params = (DELIVERED, *(x for a in chunk for x in (a["s"], a["at"])),
                  *(a["s"] for a in chunk))
        conn.exec_driver_sql(
            f"UPDATE {table} SET status = ?, last_error = '', attempts = attempts + 1, "
            f"delivered_at = CASE seq {whens} END WHERE seq IN ({marks})", params)


class WebhookTables(Database):
    _box: SecretBox  # set by SecretRows.__init__

    def _endpoint(self, r: WebhookEndpointRow | Row[Any]) -> EndpointRec:
        return EndpointRec(
            endpoint_id=r.endpoint_id, app_id=r.app_id, url=r.url,
            events=tuple(e for e in r.events.split(",") if e),
            secret=self._box.wrap(r.secret, _secret_context(r.endpoint_id)),
            enabled=r.enabled, failures=r.failures, paused_until=r.paused_until,
            disabled_reason=r.disabled_reason, created_at=r.created_at,
        )

    # Endpoints (configuration: each change bumps the config version) ---------

    async def add_webhook(self, app_id: str, url: str, events: Sequence[str], *,
                          secret: str, now: float) -> EndpointRec:
        endpoint_id = new_endpoint_id()
        async with self._config_write() as s:
            if await s.get(App, app_id) is None:
                raise NotFound(f"app {app_id!r} does not exist")
            count = await s.scalar(select(func.count()).select_from(WebhookEndpointRow)
                                   .where(WebhookEndpointRow.app_id == app_id))
            if (count or 0) >= MAX_ENDPOINTS_PER_APP:
                raise Conflict(f"app {app_id!r} already has {MAX_ENDPOINTS_PER_APP} webhooks;"
                               " remove one first")
            row = WebhookEndpointRow(
                endpoint_id=endpoint_id, app_id=app_id, url=url, events=",".join(events),
                secret=self._box.seal(secret, _secret_context(endpoint_id)), enabled=True,
                failures=0, paused_until=0.0, disabled_reason="", created_at=now,
                enabled_at=now)
            s.add(row)
        return self._endpoint(row)

    async def get_webhook(self, endpoint_id: str) -> EndpointRec | None:
        async with self._read() as s:
            row = await s.get(WebhookEndpointRow, endpoint_id)
            return None if row is None else self._endpoint(row)

    async def list_webhooks(self, app_id: str | None = None) -> Sequence[EndpointRec]:
        q = select(WebhookEndpointRow).order_by(WebhookEndpointRow.app_id,
                                                WebhookEndpointRow.created_at)
        if app_id is not None:
            q = q.where(WebhookEndpointRow.app_id == app_id)
        async with self._read() as s:
            return [self._endpoint(r) for r in (await s.scalars(q)).all()]

    async def enable_webhook(self, endpoint_id: str, *, enabled: bool = True,
                             reason: str = "", now: float | None = None) -> EndpointRec:
        """Enable (failures forgotten, no rest) or disable an endpoint. Attempts begun
        before ``now`` (by default, the time of day) do not rest or disable it again."""
        async with self._config_write() as s:
            row = await s.get(WebhookEndpointRow, endpoint_id)
            if row is None:
                raise _no_endpoint(endpoint_id)
            row.enabled = enabled
            row.disabled_reason = "" if enabled else (reason or "disabled")
            if enabled:
                row.failures, row.paused_until = 0, 0.0
                row.enabled_at = time.time() if now is None else now
        return self._endpoint(row)

    async def remove_webhook(self, endpoint_id: str) -> None:
        """Delete an endpoint and its deliveries, sent or not."""
        async with self._config_write() as s:
            res = await s.execute(delete(WebhookEndpointRow)
                                  .where(WebhookEndpointRow.endpoint_id == endpoint_id))
            if rowcount(res) == 0:
                raise _no_endpoint(endpoint_id)

    # The outbox ----------------------------------------------------------------

    async def add_deliveries(self, rows: Sequence[NewDelivery], *, node: str) -> list[int]:
        """Write deliveries ``pending``, in the given order (their ``seq`` order);
        returns their ``seq``, in the same order."""
        if not rows:
            return []
        values = [(r.delivery_id, r.endpoint_id, r.event_id, r.event_type, r.order_key, node,
                   r.body, PENDING, 0, "", r.created_at, None) for r in rows]

        def write(conn: Connection) -> list[int]:  # Core in a group commit
            if conn.dialect.name == "sqlite":
                return _add_sqlite(conn, values)
            # seq from the sequence, in list order: RETURNING sorted by parameter order
            # (SQLAlchemy batches the rows: "insertmanyvalues").
            return list(conn.execute(_ADD, [dict(zip(_ADD_COLUMNS, v, strict=True))
                                            for v in values]).scalars())

        return await self._write_core(write)

    async def webhook_backlog(self, node: str) -> tuple[int, float | None]:
        """How many deliveries of ``node`` wait, and when the oldest was created."""
        d = WebhookDeliveryRow
        # The (node, status, seq) index covers it: only pending rows are read.
        q = select(func.count(), func.min(d.created_at)).where(
            d.node == node, d.status == PENDING)
        async with self._engine.connect() as conn:
            count, oldest = (await conn.execute(q)).one()
        return int(count), float(oldest) if oldest is not None else None

    async def pending_deliveries(
        self, *, node: str, now: float, limit: int, exclude: Collection[int] = (),
        skip_endpoints: Collection[str] = (),
    ) -> Sequence[tuple[DeliveryRec, EndpointRec]]:
        """The oldest pending deliveries of ``node`` whose endpoint is enabled and not
        resting, oldest first, each with its endpoint; ``exclude``: seqs being sent,
        ``skip_endpoints``: endpoints the caller cannot send to now."""
        read = await self.read_outbox(node=node, now=now, limit=limit, exclude=exclude,
                                      skip_endpoints=skip_endpoints)
        return read.rows

    async def read_outbox(
        self, *, node: str, now: float, limit: int, exclude: Collection[int] = (),
        skip_endpoints: Collection[str] = (), watch: Collection[str] = (),
    ) -> OutboxRead:
        """``pending_deliveries``, and the endpoints named in ``watch`` as they stood
        when the rows were read (one snapshot): whether the read left out their
        deliveries (a rest, or disabled, perhaps set by another node) is then known."""
        d, e = WebhookDeliveryRow, WebhookEndpointRow
        # Plain rows, not ORM objects: the sender reads this many times a second.
        q = (select(d.seq, d.delivery_id, d.endpoint_id, d.event_id, d.event_type,
                    d.order_key, d.body, d.status, d.attempts, d.last_error, d.created_at,
                    d.delivered_at)
             .join(e, e.endpoint_id == d.endpoint_id)
             .where(d.node == node, d.status == PENDING, e.enabled.is_(True),
                    e.paused_until <= now)
             .order_by(d.seq).limit(limit))
        params: dict[str, object] = {}
        if exclude:
            q = q.where(d.seq.not_in(bindparam("busy", expanding=True)))
            params["busy"] = list(exclude)
        if skip_endpoints:
            q = q.where(d.endpoint_id.not_in(bindparam("full", expanding=True)))
            params["full"] = list(skip_endpoints)
        # Core on one connection, no ORM session, no identity map; one snapshot for
        # both statements: SQLite's transaction is one, PostgreSQL's READ COMMITTED
        # would take one a statement (a read-only REPEATABLE READ never conflicts).
        async with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            rows = (await conn.execute(q, params)).all()
            ids = {r.endpoint_id for r in rows} | set(watch)
            endpoints = {x.endpoint_id: self._endpoint(x) for x in (await conn.execute(
                select(*e.__table__.c).where(e.endpoint_id.in_(ids)))).all()} if ids else {}
        return OutboxRead(
            rows=[(DeliveryRec(**r._asdict()), endpoints[r.endpoint_id]) for r in rows],
            endpoints=endpoints)

    async def record_attempts(self, attempts: Sequence[Attempt],
                              endpoints: Sequence[EndpointState], *,
                              disable_after: int = 100) -> list[StoredState]:
        """Store what attempts came to and what they did to their endpoints, at once;
        returns those endpoints as the database then holds them (a removed one is
        absent). An endpoint whose failures in a row reach ``disable_after`` is
        disabled, by the one record that takes it there (``disabled_now``)."""
        ok = [{"s": a.seq, "at": a.at} for a in attempts if a.ok]
        failed = [{"s": a.seq, "err": a.error[:255]} for a in attempts if not a.ok]
        cols = (_E.endpoint_id, _E.failures, _E.paused_until, _E.enabled,
                _E.disabled_reason)

        def write(conn: Connection) -> list[StoredState]:  # Core in a group commit
            if ok and conn.dialect.name == "sqlite":
                _delivered_sqlite(conn, ok)
            elif ok:
                conn.execute(_DELIVERED, ok)
            if failed:
                conn.execute(_FAILED, failed)
            if not endpoints:
                return []
            counted: dict[str, EndpointState] = {}
            for e in endpoints:
                if e.ok:
                    conn.execute(_SUCCEEDED, {"e": e.endpoint_id, "seen": e.seen_until})
                if e.failures and rowcount(conn.execute(_FAILED_ENDPOINT, {
                        "e": e.endpoint_id, "n": e.failures, "p": e.paused_until,
                        "began": e.began})):
                    counted[e.endpoint_id] = e
            out = []
            # The UPDATEs above hold the rows' locks (PostgreSQL) or the database's
            # (SQLite) to the commit: another node's record reads these rows after it.
            for r in conn.execute(select(*cols).where(
                    _E.endpoint_id.in_([e.endpoint_id for e in endpoints]))).all():
                mine = counted.get(r.endpoint_id)
                if mine is None or not r.enabled or r.failures < disable_after:
                    out.append(_stored(r))
                    continue
                why = f"{r.failures} failed attempts in a row; the last: {mine.error}"[:255]
                conn.execute(_DISABLE, {"e": r.endpoint_id, "why": why})
                # A configuration change: every process stops queueing for it.
                conn.execute(_BUMP_CONFIG)
                out.append(StoredState(endpoint_id=r.endpoint_id, failures=r.failures,
                                       paused_until=r.paused_until, enabled=False,
                                       disabled_reason=why, disabled_now=True))
            return out

        return await self._write_core(write)

    async def list_deliveries(
        self, *, app_id: str | None = None, endpoint_id: str | None = None,
        status: str | None = None, limit: int = 50,
    ) -> Sequence[DeliveryRec]:
        """Newest first."""
        q = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.seq.desc()).limit(limit)
        if endpoint_id is not None:
            q = q.where(WebhookDeliveryRow.endpoint_id == endpoint_id)
        if app_id is not None:
            q = q.where(WebhookDeliveryRow.endpoint_id.in_(
                select(WebhookEndpointRow.endpoint_id)
                .where(WebhookEndpointRow.app_id == app_id)))
        if status is not None:
            q = q.where(WebhookDeliveryRow.status == status)
        async with self._read() as s:
            return [_delivery(r) for r in (await s.scalars(q)).all()]

    async def redeliver(self, delivery_id: str, *, node: str) -> DeliveryRec:
        """Send a delivery again (same id and body), from ``node``, as soon as its
        endpoint is enabled and not resting."""
        async with self._write() as s:
            row = await s.scalar(select(WebhookDeliveryRow)
                                 .where(WebhookDeliveryRow.delivery_id == delivery_id))
            if row is None:
                raise NotFound(f"delivery {delivery_id!r} does not exist "
                               "(see tongdai webhook deliveries)")
            row.status, row.node, row.delivered_at = PENDING, node, None
        return _delivery(row)

    async def purge_deliveries(self, *, delivered_before: float) -> int:
        """Forget deliveries delivered before the given time; pending ones are kept."""
        async with self._write() as s:
            res = await s.execute(
                delete(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.status == DELIVERED,
                       WebhookDeliveryRow.delivered_at < delivered_before))
            return rowcount(res)


def _stored(r: Any) -> StoredState:
    return StoredState(endpoint_id=r.endpoint_id, failures=r.failures,
                       paused_until=r.paused_until, enabled=r.enabled,
                       disabled_reason=r.disabled_reason)


def _secret_context(endpoint_id: str) -> str:
    return f"webhook_endpoints.secret:{endpoint_id}"
