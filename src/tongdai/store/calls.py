"""The tables the running PBX writes: registrations (the location service), CDRs and
websocket auth tokens. ``SqlStore`` (``store/sql.py``) inherits these methods."""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ScalarSelect, Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tongdai.store.engine import Database, rowcount
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.models import AuthToken, CdrDaily, CdrRow, RegistrationRow
from tongdai.store.records import Cdr, Registration, TokenRec

# Expired tokens are deleted when a new one is added, this long after they expired
# (kept a while so "expired" and "unknown" stay distinguishable in logs).
TOKEN_GRACE = 3600.0

DAY = 86400

_REG_FIELDS = (
    "source_host", "source_port", "transport", "expires_at", "call_id", "cseq", "user_agent",
)


def _reg_rec(r: RegistrationRow) -> Registration:
    return Registration(
        sip_user=r.sip_user, contact=r.contact, source_host=r.source_host,
        source_port=r.source_port, transport=r.transport, expires_at=r.expires_at,
        call_id=r.call_id, cseq=r.cseq, user_agent=r.user_agent,
    )


def _cdr_row(c: Cdr) -> CdrRow:
    return CdrRow(
        call_id=c.call_id, app_id=c.app_id, caller=c.caller, callee=c.callee,
        klass=c.klass, did_number=c.did_number, direction=c.direction,
        status_detail=c.status_detail, duration_seconds=c.duration_seconds,
        unix_timestamp=c.unix_timestamp, billing_seconds=c.billing_seconds,
        recording=c.recording, started_at=c.started_at, answered_at=c.answered_at,
        ended_at=c.ended_at, sip_code=c.sip_code, hangup_by=c.hangup_by,
        sip_users=list(c.sip_users),
    )


def _cdr_rec(r: CdrRow) -> Cdr:
    return Cdr(
        call_id=r.call_id, app_id=r.app_id, caller=dict(r.caller), callee=dict(r.callee),
        klass=r.klass, did_number=r.did_number, direction=r.direction,
        status_detail=r.status_detail, duration_seconds=r.duration_seconds,
        unix_timestamp=r.unix_timestamp, billing_seconds=r.billing_seconds,
        recording=r.recording, started_at=r.started_at, answered_at=r.answered_at,
        ended_at=r.ended_at, sip_code=r.sip_code, hangup_by=r.hangup_by,
        sip_users=tuple(r.sip_users),
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


def _token_rec(t: AuthToken) -> TokenRec:
    return TokenRec(
        token_hash=t.token_hash, app_id=t.app_id, sip_user=t.sip_user,
        expires_at=t.expires_at, revoked=t.revoked,
    )


class CallTables(Database):
    # Registrations (RFC 3261 §10.3) --------------------------------------------

    async def save_registration(self, reg: Registration) -> None:
        """Insert or replace the binding (sip_user, contact)."""
        values: dict[str, Any] = {f: getattr(reg, f) for f in _REG_FIELDS}
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(RegistrationRow).values(
            sip_user=reg.sip_user, contact=reg.contact, **values
        )
        stmt = stmt.on_conflict_do_update(index_elements=["sip_user", "contact"], set_=values)
        try:
            async with self._write() as s:
                await s.execute(stmt)
        except IntegrityError:  # the only other constraint: the device must exist
            raise NotFound(f"device {reg.sip_user!r} does not exist") from None

    async def sync_registrations(
        self, upserts: Sequence[Registration], deletes: Sequence[tuple[str, str]]
    ) -> None:
        """Apply a batch of binding changes in one transaction (the location service
        writes behind: one commit per batch, not per REGISTER)."""
        if not upserts and not deletes:
            return
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        async with self._write() as s:
            if upserts:
                rows = [
                    {"sip_user": r.sip_user, "contact": r.contact,
                     **{f: getattr(r, f) for f in _REG_FIELDS}}
                    for r in upserts
                ]
                stmt = insert(RegistrationRow)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["sip_user", "contact"],
                    set_={f: getattr(stmt.excluded, f) for f in _REG_FIELDS},
                )
                # Bindings of devices removed meanwhile would violate the foreign key:
                # keep only those whose device still exists.
                try:
                    async with s.begin_nested():
                        await s.execute(stmt, rows)
                except IntegrityError:
                    for row in rows:
                        try:
                            async with s.begin_nested():
                                await s.execute(stmt, [row])
                        except IntegrityError:
                            continue
            for sip_user, contact in deletes:
                await s.execute(
                    delete(RegistrationRow).where(
                        RegistrationRow.sip_user == sip_user, RegistrationRow.contact == contact
                    )
                )

    async def delete_registration(self, sip_user: str, contact: str) -> None:
        async with self._write() as s:
            await s.execute(
                delete(RegistrationRow).where(
                    RegistrationRow.sip_user == sip_user, RegistrationRow.contact == contact
                )
            )

    async def load_registrations(self, now: float) -> Sequence[Registration]:
        """Every binding that has not expired at ``now``."""
        async with self._read() as s:
            rows = await s.scalars(
                select(RegistrationRow)
                .where(RegistrationRow.expires_at > now)
                .order_by(RegistrationRow.sip_user, RegistrationRow.contact)
            )
            return [_reg_rec(r) for r in rows]

    async def purge_registrations(self, now: float) -> int:
        """Delete the bindings expired at ``now``; return how many."""
        async with self._write() as s:
            result = await s.execute(
                delete(RegistrationRow).where(RegistrationRow.expires_at <= now)
            )
            return rowcount(result)

    # CDRs -----------------------------------------------------------------------

    async def add_cdr(self, cdr: Cdr) -> None:
        """Store durably (committed) before returning."""
        try:
            async with self._write() as s:
                s.add(_cdr_row(cdr))
                await s.flush()  # the CDR first: a duplicate fails before any count moves
                await s.execute(*_daily_upsert(self.dialect, [cdr]))
        except IntegrityError:
            async with self._read() as s:
                exists = await s.get(CdrRow, cdr.call_id) is not None
            if exists:
                raise Conflict(f"a CDR for call {cdr.call_id!r} already exists") from None
            raise NotFound(f"app {cdr.app_id!r} does not exist") from None

    async def add_cdrs(self, cdrs: Sequence[Cdr]) -> None:
        """Store many CDRs in one transaction (group commit): all or none."""
        if not cdrs:
            return
        try:
            async with self._write() as s:
                s.add_all([_cdr_row(c) for c in cdrs])
                await s.flush()
                await s.execute(*_daily_upsert(self.dialect, cdrs))
        except IntegrityError:
            raise Conflict("a CDR of this batch already exists or names an unknown app") from None

    async def get_cdr(self, call_id: str) -> Cdr | None:
        async with self._read() as s:
            row = await s.get(CdrRow, call_id)
            return _cdr_rec(row) if row else None

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

    # Websocket auth tokens ------------------------------------------------------

    async def add_token(self, tok: TokenRec) -> None:
        row = AuthToken(
            token_hash=tok.token_hash, app_id=tok.app_id, sip_user=tok.sip_user,
            expires_at=tok.expires_at, revoked=tok.revoked,
        )
        try:
            async with self._write() as s:
                # Keeps the table to the tokens of the last hour or so.
                await s.execute(
                    delete(AuthToken).where(AuthToken.expires_at < time.time() - TOKEN_GRACE)
                )
                s.add(row)
        except IntegrityError:
            raise Conflict(
                "the token already exists, or its app or device does not exist"
            ) from None

    async def get_token(self, token_hash: str) -> TokenRec | None:
        """The token, also when expired or revoked (the caller decides)."""
        async with self._read() as s:
            row = await s.get(AuthToken, token_hash)
            return _token_rec(row) if row else None

    async def revoke_tokens(self, app_id: str, sip_user: str | None = None) -> None:
        async with self._write() as s:
            await self._revoke(s, app_id, sip_user)

    @staticmethod
    async def _revoke(s: AsyncSession, app_id: str, sip_user: str | None) -> None:
        stmt = update(AuthToken).where(AuthToken.app_id == app_id).values(revoked=True)
        if sip_user is not None:
            stmt = stmt.where(AuthToken.sip_user == sip_user)
        await s.execute(stmt)
