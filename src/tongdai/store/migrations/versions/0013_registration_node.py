"""The node that holds each binding, so a node restarting restores only its own
(several nodes sharing one database; docs/scaling.md).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("node", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("node")
