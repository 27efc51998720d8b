"""The app-wide event stream: each app's events, numbered, for replay after a restart.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_events",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("devices", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "seq", name="pk_app_events"),
    )
    op.create_table(
        "app_event_seqs",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", name="pk_app_event_seqs"),
    )


def downgrade() -> None:
    op.drop_table("app_event_seqs")
    op.drop_table("app_events")
