"""The location service's bindings (RFC 3261 §10.3), written behind in batches.
``SqlStore`` (``store/sql.py``) inherits these methods: ``Registrations`` in
``store/protocol.py``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tongdai.store.engine import Database, rowcount
from tongdai.store.models import RegistrationRow
from tongdai.store.records import Registration

_REG_FIELDS = (
    "source_host", "source_port", "transport", "expires_at", "call_id", "cseq", "user_agent",
)


def _reg_rec(r: RegistrationRow) -> Registration:
    return Registration(
        sip_user=r.sip_user, contact=r.contact, source_host=r.source_host,
        source_port=r.source_port, transport=r.transport, expires_at=r.expires_at,
        call_id=r.call_id, cseq=r.cseq, user_agent=r.user_agent,
        path=tuple(r.path.split("\n")) if r.path else (),
    )



@functools.cache
def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RegistrationRow)
    return stmt.on_conflict_do_update(
        index_elements=["sip_user", "contact"],
        set_={f: getattr(stmt.excluded, f) for f in (*_REG_FIELDS, "node", "path")},
    )


_DROP = delete(RegistrationRow).where(
    RegistrationRow.sip_user == bindparam("d_user"),
    RegistrationRow.contact == bindparam("d_contact"),
)


def _upsert_existing(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """Upsert the bindings of ``rows`` whose device still exists: those of devices
    removed meanwhile would violate the foreign key."""
    try:
        with conn.begin_nested():
            conn.execute(stmt, rows)
    except IntegrityError:
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(stmt, [row])
            except IntegrityError:
                continue


class RegistrationTables(Database):
    async def sync_registrations(
        self, upserts: Sequence[Registration], deletes: Sequence[tuple[str, str]],
        *, node: str = "",
    ) -> None:
        """Apply a batch of binding changes in one transaction (the location service
        writes behind: one commit per batch, not per REGISTER); ``node`` is the node
        that holds the upserted bindings."""
        if not upserts and not deletes:
            return
        # Core statements, not the ORM's bulk path (which walks every row through the
        # unit of work): a REGISTER storm makes these batches large.
        rows = [
            {"sip_user": r.sip_user, "contact": r.contact, "node": node,
             "path": "\n".join(r.path), **{f: getattr(r, f) for f in _REG_FIELDS}}
            for r in upserts
        ]
        stmt = _upsert(self.dialect)

        def write(conn: Connection) -> None:
            if rows:
                _upsert_existing(conn, stmt, rows)
            if deletes:
                conn.execute(_DROP, [{"d_user": u, "d_contact": c} for u, c in deletes])

        await self._write_core(write)

    async def load_registrations(
        self, now: float, *, node: str | None = None,
    ) -> Sequence[Registration]:
        """Every binding that has not expired at ``now``; with ``node``, only those
        that node holds (and those written before bindings had a node)."""
        query = select(RegistrationRow).where(RegistrationRow.expires_at > now)
        if node is not None:
            query = query.where(RegistrationRow.node.in_((node, "")))
        async with self._read() as s:
            rows = await s.scalars(
                query.order_by(RegistrationRow.sip_user, RegistrationRow.contact))
            return [_reg_rec(r) for r in rows]

    async def registrations_of(self, sip_user: str, now: float) -> Sequence[Registration]:
        """The device's bindings unexpired at ``now``, latest expiry first: what any
        node sharing the database wrote for it (the shared location's miss path)."""
        async with self._read() as s:
            rows = await s.scalars(
                select(RegistrationRow)
                .where(RegistrationRow.sip_user == sip_user, RegistrationRow.expires_at > now)
                .order_by(RegistrationRow.expires_at.desc(), RegistrationRow.contact)
            )
            return [_reg_rec(r) for r in rows]

    async def purge_registrations(self, now: float) -> int:
        """Delete the bindings expired at ``now``; return how many."""
        async with self._write() as s:
            result = await s.execute(
                delete(RegistrationRow).where(RegistrationRow.expires_at <= now)
            )
            return rowcount(result)

