"""The Path (RFC 3327) each binding was registered with, so every node reaches a
device through the edge proxy that holds its connection (docs/scaling.md).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("path", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("path")
