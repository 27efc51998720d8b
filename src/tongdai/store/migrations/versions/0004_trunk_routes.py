"""Outbound routing over several trunks: the prefixes each serves and its priority.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing trunks serve every number with the same priority: the order they were
    # created in still decides, as before.
    with op.batch_alter_table("trunks") as batch:
        batch.add_column(
            sa.Column("routes", sa.String(255), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trunks") as batch:
        batch.drop_column("priority")
        batch.drop_column("routes")
