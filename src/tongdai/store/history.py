"""History search: an app's CDRs in a time window, filtered, paged by offset or by
position (keyset), and read in batches for export.

Every query walks the order histories promises (``started_at`` newest first, ties by
``call_id``), so a position (``CdrPosition``) names one place in it: "after this
record" continues with no repeat and no gap however deep the walk goes, where an
OFFSET would re-read every row it skips.

The number filter uses ``cdrs.caller_number`` / ``callee_number`` (the national form
``numbers.normalize`` gives, filled when the CDR is stored) and their indexes, so the
old and new forms of a number find the same calls.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    RowMapping,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    intersect,
    or_,
    select,
    union_all,
)

from tongdai.store.cdrs import _total
from tongdai.store.engine import Database
from tongdai.store.errors import Invalid
from tongdai.store.models import CdrRow
from tongdai.store.records import Cdr


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrQuery:
    """Which of an app's CDRs: ``started_at`` in [start_ts, end_ts] and every filter
    given. ``number`` is a national form (``numbers.normalize``) matched against
    the caller and the callee; ``device`` a sip_user taking part in the call; ``did``
    the DID in national form; ``external_id`` a click-to-call's correlation id."""

    app_id: str
    start_ts: float
    end_ts: float
    number: str | None = None
    status_detail: str | None = None
    direction: str | None = None
    device: str | None = None
    did: str | None = None
    external_id: str | None = None

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (
            self.number, self.status_detail, self.direction, self.device, self.did,
            self.external_id))


@dataclass(frozen=True, slots=True)
class CdrPosition:
    """A place in the histories order: just after the CDR (started_at, call_id)."""

    started_at: float
    call_id: str

    @classmethod
    def of(cls, cdr: Cdr) -> CdrPosition:
        return cls(cdr.started_at, cdr.call_id)


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_T = CdrRow.__table__
# What a Cdr record is made of (the search columns stay in the database).
_COLS = tuple(c for c in _T.c if c.name not in ("caller_number", "callee_number"))
_ORDER = ("started_at", "call_id")


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which conditions a query has: statements are built (and compiled) once per
    shape, then run with its values as bound parameters."""

    number: bool
    status_detail: bool
    direction: bool
    did: bool
    device: bool
    after: bool
    external_id: bool = False


def _shape(q: CdrQuery, after: CdrPosition | None) -> _Shape:
    return _Shape(q.number is not None, q.status_detail is not None,
                  q.direction is not None, q.did is not None, q.device is not None,
                  after is not None, q.external_id is not None)


def _params(q: CdrQuery, after: CdrPosition | None) -> dict[str, Any]:
    p: dict[str, Any] = {"app_id": q.app_id, "lo": q.start_ts, "hi": q.end_ts,
                         "number": q.number, "status_detail": q.status_detail,
                         "direction": q.direction, "did": q.did,
                         "external_id": q.external_id}
    if q.device is not None:
        # sip_users is a JSON list of strings as json.dumps wrote it, and a sip_user
        # never holds a quote or a backslash (store/validate.py), so the quoted name
        # occurs in the text exactly when it is an element.
        p["device"] = '%"' + _like_escape(q.device) + '"%'
    if after is not None:
        p["at"], p["cid"] = after.started_at, after.call_id
    return p


def _conditions(sh: _Shape) -> list[ColumnElement[bool]]:
    """Every condition of the shape but the number (see ``_branches``)."""
    c = _T.c
    cond: list[ColumnElement[bool]] = [
        c.app_id == bindparam("app_id"), c.started_at >= bindparam("lo"),
        c.started_at <= bindparam("hi"),
    ]
    if sh.status_detail:
        cond.append(c.status_detail == bindparam("status_detail"))
    if sh.direction:
        cond.append(c.direction == bindparam("direction"))
    if sh.did:
        cond.append(c.did_number == bindparam("did"))
    if sh.external_id:  # ix_cdrs_app_external_id
        cond.append(c.external_id == bindparam("external_id"))
    if sh.device:
        cond.append(cast(c.sip_users, Text).like(bindparam("device"), escape="\\"))
    if sh.after:
        # Newest first, then call_id ascending: what follows (t, c) is older, or as
        # old with a greater call_id.
        cond.append(or_(c.started_at < bindparam("at"),
                        and_(c.started_at == bindparam("at"), c.call_id > bindparam("cid"))))
    return cond


def _branches(sh: _Shape, *cols: Any) -> list[Select[Any]]:
    """SELECTs of ``cols`` whose union (without overlap) is what the query matches.

    A number is matched as two branches, the caller's and the callee's, each an
    index range in histories order (ix_cdrs_app_caller_number, ..._callee_number),
    rather than one OR: for an OR, SQLite without statistics (a database nobody ran
    ANALYZE on) walks the whole window instead, tens of milliseconds on a busy app.
    """
    cond = _conditions(sh)
    if not sh.number:
        return [select(*cols).where(*cond)]
    c = _T.c
    n: BindParameter[str] = bindparam("number")
    return [
        select(*cols).where(c.caller_number == n, *cond),
        # A call from the number to itself is in the first branch only.
        select(*cols).where(c.callee_number == n, *cond,
                            or_(c.caller_number.is_(None), c.caller_number != n)),
    ]


@functools.cache
def _page(sh: _Shape) -> Select[Any]:
    branches = _branches(sh, *_COLS)
    if len(branches) == 1:
        stmt, cols = branches[0], _T.c
    else:
        # Each branch ends where the page does, in its own index order: a number with
        # a thousand calls in the window reads off + lim rows of each, not all of them
        # (PostgreSQL sorted the union of every matching row, 5 ms and more).
        firsts = [select(*b.order_by(_T.c.started_at.desc(), _T.c.call_id)
                         .limit(bindparam("upto")).subquery().c) for b in branches]
        u = union_all(*firsts).subquery()
        stmt, cols = select(*u.c), u.c
    return (stmt.order_by(cols.started_at.desc(), cols.call_id)
            .limit(bindparam("lim")).offset(bindparam("off")))


def _page_params(q: CdrQuery, after: CdrPosition | None, *, limit: int,
                 offset: int) -> dict[str, Any]:
    return {**_params(q, after), "lim": limit, "off": offset, "upto": limit + offset}


@functools.cache
def _count(sh: _Shape) -> Select[Any]:
    if sh == _NUMBER_ONLY:
        return _count_number()
    branches = _branches(sh, _T.c.call_id)
    found = branches[0] if len(branches) == 1 else union_all(*branches)
    return select(func.count()).select_from(found.subquery())


_NUMBER_ONLY = _Shape(number=True, status_detail=False, direction=False, did=False,
                      device=False, after=False)


def _count_number() -> Select[Any]:
    """The total of a search by number alone, from the two number indexes only.

    The callee branch of ``_branches`` leaves out calls from the number to itself,
    which needs each row's caller_number: a table read per matching call (1 ms for a
    number with 800 calls in the window, 10 times the index counts). Instead: the
    caller's calls plus the callee's, less those in both (same call_id), each an
    index range that holds every column it reads."""
    c = _T.c
    n: BindParameter[str] = bindparam("number")
    cond = _conditions(_NUMBER_ONLY)
    as_caller = select(c.call_id).where(c.caller_number == n, *cond)
    as_callee = select(c.call_id).where(c.callee_number == n, *cond)

    def count(q: Any) -> Any:
        return select(func.count()).select_from(q.subquery()).scalar_subquery()

    return select(count(as_caller) + count(as_callee)
                  - count(intersect(as_caller, as_callee)))


def _rec(m: RowMapping) -> Cdr:
    return Cdr(
        call_id=m["call_id"], app_id=m["app_id"], caller=dict(m["caller"]),
        callee=dict(m["callee"]), klass=m["klass"], did_number=m["did_number"],
        direction=m["direction"], status_detail=m["status_detail"],
        duration_seconds=m["duration_seconds"], unix_timestamp=m["unix_timestamp"],
        billing_seconds=m["billing_seconds"], recording=m["recording"],
        started_at=m["started_at"], answered_at=m["answered_at"], ended_at=m["ended_at"],
        sip_code=m["sip_code"], hangup_by=m["hangup_by"], sip_users=tuple(m["sip_users"]),
        external_id=m["external_id"], metadata=m["call_metadata"],
    )


class HistoryQueries(Database):
    """The histories queries; ``SqlStore`` inherits them."""

    async def search_cdrs(
        self, q: CdrQuery, *, limit: int, offset: int = 0, after: CdrPosition | None = None,
    ) -> tuple[int, Sequence[Cdr]]:
        """(total, page): ``total`` counts every CDR ``q`` matches (whatever ``after``),
        the page holds up to ``limit`` of them in histories order, from just after
        ``after`` (if given), skipping ``offset``."""
        if limit < 0 or offset < 0:
            raise Invalid("limit and offset must not be negative")
        sh = _shape(q, after)
        # One transaction: the total and the page come from one snapshot.
        async with self._engine.connect() as conn:
            if q.filtered:
                total = await conn.scalar(
                    _count(replace(sh, after=False)), _params(q, None))
            else:
                total = await conn.scalar(_total(q.app_id, q.start_ts, q.end_ts))
            rows = await conn.execute(
                _page(sh), _page_params(q, after, limit=limit, offset=offset))
            return int(total or 0), [_rec(r) for r in rows.mappings()]

    async def iter_cdrs(
        self, q: CdrQuery, *, batch: int = 500
    ) -> AsyncIterator[Sequence[Cdr]]:
        """Every CDR ``q`` matches, in histories order, ``batch`` at a time. Each batch
        is its own short read (a position continues it), so a slow reader holds no
        transaction open and memory stays at one batch."""
        if batch < 1:
            raise Invalid("batch must be at least 1")
        after: CdrPosition | None = None
        while True:
            async with self._engine.connect() as conn:
                result = await conn.execute(
                    _page(_shape(q, after)), _page_params(q, after, limit=batch, offset=0))
                rows = [_rec(r) for r in result.mappings()]
            if rows:
                yield rows
            if len(rows) < batch:
                return
            after = CdrPosition.of(rows[-1])
