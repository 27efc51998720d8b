"""Click-to-call correlation: the integrator's external_id and metadata on each CDR
(and on the checkpoint of a call in progress, so a crash keeps them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("cdrs", "call_checkpoints")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("external_id", sa.String(128), nullable=True))
            batch.add_column(sa.Column("call_metadata", sa.JSON(), nullable=True))
    where = sa.text("external_id IS NOT NULL")
    op.create_index("ix_cdrs_app_external_id", "cdrs",
                    ["app_id", "external_id", sa.text("started_at DESC"), "call_id"],
                    sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_cdrs_app_external_id", "cdrs")
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("call_metadata")
            batch.drop_column("external_id")
