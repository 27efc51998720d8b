"""History search by phone number: each CDR's caller and callee number in national form.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tongdai.store.models import search_number

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows read and rewritten per statement while filling the columns of existing CDRs.
_BATCH = 2000

_cdrs = sa.table(
    "cdrs",
    sa.column("call_id", sa.String),
    sa.column("caller", sa.JSON),
    sa.column("callee", sa.JSON),
    sa.column("caller_number", sa.String),
    sa.column("callee_number", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("cdrs") as batch:
        batch.add_column(sa.Column("caller_number", sa.String(32), nullable=True))
        batch.add_column(sa.Column("callee_number", sa.String(32), nullable=True))
    _fill(op.get_bind())
    for party in ("caller", "callee"):
        op.create_index(f"ix_cdrs_app_{party}_number", "cdrs",
                        ["app_id", f"{party}_number", sa.text("started_at DESC"), "call_id"])


def _fill(conn: sa.Connection) -> None:
    """The numbers of the CDRs written before this revision, in call_id order, so
    the walk needs no OFFSET and each batch is one executemany."""
    last = ""
    update = (
        sa.update(_cdrs).where(_cdrs.c.call_id == sa.bindparam("k"))
        .values(caller_number=sa.bindparam("a"), callee_number=sa.bindparam("b"))
    )
    while True:
        rows = conn.execute(
            sa.select(_cdrs.c.call_id, _cdrs.c.caller, _cdrs.c.callee)
            .where(_cdrs.c.call_id > last).order_by(_cdrs.c.call_id).limit(_BATCH)
        ).all()
        if not rows:
            return
        conn.execute(update, [
            {"k": r.call_id, "a": search_number(r.caller), "b": search_number(r.callee)}
            for r in rows
        ])
        last = rows[-1].call_id


def downgrade() -> None:
    op.drop_index("ix_cdrs_app_callee_number", "cdrs")
    op.drop_index("ix_cdrs_app_caller_number", "cdrs")
    with op.batch_alter_table("cdrs") as batch:
        batch.drop_column("callee_number")
        batch.drop_column("caller_number")
