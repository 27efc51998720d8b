"""The records a call leaves: its CDR, counted per app and UTC day for fast history
totals (checkpoints of calls in progress: ``store/checkpoints.py``). ``SqlStore``
(``store/sql.py``) inherits these methods: ``CallRecords`` and ``Histories`` in
``store/protocol.py``."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ScalarSelect, Select, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tongdai.store.checkpoints import (
    CheckpointTables,
    drop_checkpoints,
    put_checkpoints,
    touch_checkpoints,
)
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.models import CdrDaily, CdrRow
from tongdai.store.records import CallCheckpoint, Cdr

DAY = 86400


def _cdr_row(c: Cdr) -> CdrRow:
    return CdrRow(
        call_id=c.call_id, app_id=c.app_id, caller=c.caller, callee=c.callee,
        klass=c.klass, did_number=c.did_number, direction=c.direction,
        status_detail=c.status_detail, duration_seconds=c.duration_seconds,
        unix_timestamp=c.unix_timestamp, billing_seconds=c.billing_seconds,
        recording=c.recording, started_at=c.started_at, answered_at=c.answered_at,
        ended_at=c.ended_at, sip_code=c.sip_code, hangup_by=c.hangup_by,
        sip_users=list(c.sip_users), external_id=c.external_id, call_metadata=c.metadata,
    )


_CDR_INSERT = insert(CdrRow)


def _cdr_values(c: Cdr) -> dict[str, Any]:
    return {
        "call_id": c.call_id, "app_id": c.app_id, "caller": c.caller, "callee": c.callee,
        "klass": c.klass, "did_number": c.did_number, "direction": c.direction,
        "status_detail": c.status_detail, "duration_seconds": c.duration_seconds,
        "unix_timestamp": c.unix_timestamp, "billing_seconds": c.billing_seconds,
        "recording": c.recording, "started_at": c.started_at, "answered_at": c.answered_at,
        "ended_at": c.ended_at, "sip_code": c.sip_code, "hangup_by": c.hangup_by,
        "sip_users": list(c.sip_users), "external_id": c.external_id,
        "call_metadata": c.metadata,
    }


def _cdr_rec(r: CdrRow) -> Cdr:
    return Cdr(
        call_id=r.call_id, app_id=r.app_id, caller=dict(r.caller), callee=dict(r.callee),
        klass=r.klass, did_number=r.did_number, direction=r.direction,
        status_detail=r.status_detail, duration_seconds=r.duration_seconds,
        unix_timestamp=r.unix_timestamp, billing_seconds=r.billing_seconds,
        recording=r.recording, started_at=r.started_at, answered_at=r.answered_at,
        ended_at=r.ended_at, sip_code=r.sip_code, hangup_by=r.hangup_by,
        sip_users=tuple(r.sip_users), external_id=r.external_id, metadata=r.call_metadata,
    )


def utc_day(ts: float) -> int:
    """floor(ts / 86400): the UTC day whose [midnight, next midnight) holds ts.
    Checked against ``d * DAY`` (an exact integer) rather than trusting the rounded
    quotient, so it agrees to the last double with the 0003 migration's backfill."""
    d = math.floor(ts / DAY)
    return d - 1 if d * DAY > ts else d


def _total(app_id: str, start_ts: float, end_ts: float) -> Select[int]:
    """One statement (one snapshot, also under READ COMMITTED) giving the number of
    the app's CDRs with started_at in [start_ts, end_ts]: the daily counts of the days
    wholly inside, plus an index count of the partial days at either edge."""
    def count(lo: float, hi: float, hi_inclusive: bool) -> ScalarSelect[int]:
        return (
            select(func.count()).select_from(CdrRow)
            .where(CdrRow.app_id == app_id, CdrRow.started_at >= lo,
                   CdrRow.started_at <= hi if hi_inclusive else CdrRow.started_at < hi)
            .scalar_subquery()
        )

    if not (math.isfinite(start_ts) and math.isfinite(end_ts)):
        return select(count(start_ts, end_ts, True))
    first = utc_day(start_ts)
    if first * DAY < start_ts:
        first += 1  # the first midnight at or after start_ts
    last = utc_day(end_ts) - 1  # the last day that ends (next midnight) at or before end_ts
    if first > last:  # no whole day inside: at most two partial days
        return select(count(start_ts, end_ts, True))
    days = (
        select(func.coalesce(func.sum(CdrDaily.count), 0))
        .where(CdrDaily.app_id == app_id, CdrDaily.day >= first, CdrDaily.day <= last)
        .scalar_subquery()
    )
    return select(
        days
        + count(start_ts, float(first * DAY), False)
        + count(float((last + 1) * DAY), end_ts, True)
    )


def _daily_upsert(dialect: str, cdrs: Sequence[Cdr]) -> tuple[Any, list[dict[str, Any]]]:
    """(statement, rows) adding ``cdrs`` to the daily counts. Rows in (app_id, day)
    order, so concurrent batches lock them in the same order and cannot deadlock."""
    per_day = Counter((c.app_id, utc_day(c.started_at)) for c in cdrs)
    rows = [{"app_id": a, "day": d, "count": n} for (a, d), n in sorted(per_day.items())]
    return _daily_statement(dialect), rows


@functools.cache
def _daily_statement(dialect: str) -> Any:
    # Built once per dialect: constructing ``excluded`` costs more than the upsert itself.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(CdrDaily)
    return stmt.on_conflict_do_update(
        index_elements=["app_id", "day"], set_={"count": CdrDaily.count + stmt.excluded.count}
    )



class CdrTables(CheckpointTables):
    async def add_cdr(self, cdr: Cdr) -> None:
        """Store durably (committed) before returning; the call's checkpoint goes."""
        try:
            async with self._write() as s:
                s.add(_cdr_row(cdr))
                await s.flush()  # the CDR first: a duplicate fails before any count moves
                await s.execute(*_daily_upsert(self.dialect, [cdr]))
                await self._drop_checkpoints(s, [cdr.call_id])
        except IntegrityError:
            async with self._read() as s:
                exists = await s.get(CdrRow, cdr.call_id) is not None
            if exists:
                raise Conflict(f"a CDR for call {cdr.call_id!r} already exists") from None
            raise NotFound(f"app {cdr.app_id!r} does not exist") from None

    async def write_calls(
        self, *, checkpoints: Sequence[CallCheckpoint] = (), cdrs: Sequence[Cdr] = (),
        touch: tuple[str, float] | None = None,
    ) -> None:
        """One transaction (group commit), all or none: upsert ``checkpoints``; with
        ``touch=(node, now)`` move the checkpoints of that node's calls still up to
        ``now``; store ``cdrs`` and delete their calls' checkpoints."""
        if not (checkpoints or cdrs or touch):
            return
        try:
            # Core statements, not the ORM: a caller waits for this commit (a peer's
            # 200), so its CPU cost is what counts.
            def write(conn: Connection) -> None:
                put_checkpoints(conn, checkpoints)
                if touch is not None:
                    touch_checkpoints(conn, *touch)
                if cdrs:
                    conn.execute(_CDR_INSERT, [_cdr_values(c) for c in cdrs])
                    conn.execute(*_daily_upsert(self.dialect, cdrs))
                    drop_checkpoints(conn, [c.call_id for c in cdrs])

            await self._write_core(write)
        except IntegrityError:
            raise Conflict(
                "a CDR of this batch already exists, or a record names an unknown app"
            ) from None

    async def list_cdrs(
        self, app_id: str, start_ts: float, end_ts: float, *, limit: int, offset: int
    ) -> tuple[int, Sequence[Cdr]]:
        """(total, page): the app's CDRs with started_at in [start_ts, end_ts],
        newest first, ties broken by call_id so paging is stable."""
        if limit < 0 or offset < 0:
            raise Invalid("limit and offset must not be negative")
        window = (
            CdrRow.app_id == app_id,
            CdrRow.started_at >= start_ts,
            CdrRow.started_at <= end_ts,
        )
        async with self._read() as s:
            total = await s.scalar(_total(app_id, start_ts, end_ts))
            rows = await s.scalars(
                select(CdrRow)
                .where(*window)
                # Matches the index ix_cdrs_app_started (app_id, started_at DESC, call_id).
                .order_by(CdrRow.started_at.desc(), CdrRow.call_id)
                .limit(limit)
                .offset(offset)
            )
            return int(total or 0), [_cdr_rec(r) for r in rows]

    async def cdr_by_recording(self, app_id: str, recording: str) -> Cdr | None:
        if not recording:
            return None
        async with self._read() as s:
            row = await s.scalar(
                select(CdrRow)
                .where(CdrRow.app_id == app_id, CdrRow.recording == recording)
                .order_by(CdrRow.started_at.desc(), CdrRow.call_id)
                .limit(1)
            )
            return _cdr_rec(row) if row else None
