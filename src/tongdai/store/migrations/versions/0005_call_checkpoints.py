"""Checkpoints of answered calls in progress, so a crash loses no call.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_checkpoints",
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("caller", sa.JSON(), nullable=False),
        sa.Column("callee", sa.JSON(), nullable=False),
        sa.Column("klass", sa.String(16), nullable=False),
        sa.Column("did_number", sa.String(20), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("answered_at", sa.Double(), nullable=False),
        sa.Column("checkpoint_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("hangup_by", sa.String(16), nullable=False),
        sa.Column("recording", sa.String(255), nullable=False),
        sa.Column("sip_users", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.app_id"], name="fk_call_checkpoints_app_id_apps",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_checkpoints"),
    )
    op.create_index("ix_call_checkpoints_node", "call_checkpoints", ["node"])


def downgrade() -> None:
    op.drop_index("ix_call_checkpoints_node", table_name="call_checkpoints")
    op.drop_table("call_checkpoints")
