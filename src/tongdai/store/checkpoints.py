"""Checkpoints of answered calls in progress (``records.CallCheckpoint``).

A checkpoint is written when a call is answered, refreshed for all of a server's
calls at once by one UPDATE every few seconds, and deleted in the transaction that
stores the call's CDR (``CallTables.write_calls``). What is left after a crash is
read back at the next start and turned into CDRs (``pbx/recovery.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from tongdai.store.engine import Database
from tongdai.store.models import CallCheckpointRow
from tongdai.store.records import CallCheckpoint

_FIELDS = (
    "app_id", "node", "caller", "callee", "klass", "did_number", "direction", "started_at",
    "answered_at", "checkpoint_at", "ended_at", "hangup_by", "recording", "external_id",
)
# Bound parameters per DELETE ... IN (...): well under SQLite's limit.
_CHUNK = 500

def _row(c: CallCheckpoint) -> dict[str, Any]:
    return {"call_id": c.call_id, "sip_users": list(c.sip_users),
            "call_metadata": c.metadata, **{f: getattr(c, f) for f in _FIELDS}}


def _rec(r: CallCheckpointRow) -> CallCheckpoint:
    return CallCheckpoint(
        call_id=r.call_id, app_id=r.app_id, node=r.node, caller=dict(r.caller),
        callee=dict(r.callee), klass=r.klass, did_number=r.did_number, direction=r.direction,
        started_at=r.started_at, answered_at=r.answered_at, checkpoint_at=r.checkpoint_at,
        ended_at=r.ended_at, hangup_by=r.hangup_by, recording=r.recording,
        sip_users=tuple(r.sip_users), external_id=r.external_id, metadata=r.call_metadata,
    )


@functools.cache
def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(CallCheckpointRow)
    return stmt.on_conflict_do_update(
        index_elements=["call_id"],
        set_={f: getattr(stmt.excluded, f)
              for f in (*_FIELDS, "sip_users", "call_metadata")},
    )


# Built once: a caller may be waiting for these commits (see ``Database._write_core``).
_TOUCH = (
    update(CallCheckpointRow)
    # Only calls still up move forward: an ended call keeps its end.
    .where(CallCheckpointRow.node == bindparam("t_node"), CallCheckpointRow.ended_at.is_(None),
           CallCheckpointRow.checkpoint_at < bindparam("t_now"))
    .values(checkpoint_at=bindparam("t_now"))
)
_DROP = delete(CallCheckpointRow).where(
    CallCheckpointRow.call_id.in_(bindparam("ids", expanding=True)))


def put_checkpoints(conn: Connection, cps: Sequence[CallCheckpoint]) -> None:
    """Insert ``cps`` or replace each call's last (inside a ``_write_core`` write)."""
    if cps:
        conn.execute(_upsert(conn.dialect.name), [_row(c) for c in cps])


def touch_checkpoints(conn: Connection, node: str, now: float) -> None:
    conn.execute(_TOUCH, {"t_node": node, "t_now": now})


def drop_checkpoints(conn: Connection, call_ids: Iterable[str]) -> None:
    ids = list(call_ids)
    for i in range(0, len(ids), _CHUNK):
        conn.execute(_DROP, {"ids": ids[i:i + _CHUNK]})


class CheckpointTables(Database):
    @staticmethod
    async def _drop_checkpoints(s: AsyncSession, call_ids: Iterable[str]) -> None:
        ids = list(call_ids)
        for i in range(0, len(ids), _CHUNK):
            await s.execute(_DROP, {"ids": ids[i:i + _CHUNK]})

    async def list_checkpoints(
        self, *, node: str, stale_before: float | None = None
    ) -> Sequence[CallCheckpoint]:
        """The checkpoints of ``node``, and those of any node last refreshed before
        ``stale_before`` (a server that died and never came back), oldest first."""
        cond = CallCheckpointRow.node == node
        if stale_before is not None:
            cond = or_(cond, CallCheckpointRow.checkpoint_at < stale_before)
        async with self._read() as s:
            rows = await s.scalars(
                select(CallCheckpointRow).where(cond)
                .order_by(CallCheckpointRow.started_at, CallCheckpointRow.call_id)
            )
            return [_rec(r) for r in rows]

    async def delete_checkpoint(self, call_id: str) -> None:
        async with self._write() as s:
            await self._drop_checkpoints(s, [call_id])
