"""Call flows on internal extensions: a number an app's devices dial that runs a flow.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "extension_flows",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.app_id"], name="fk_extension_flows_app_id_apps",
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "extension", name="pk_extension_flows"),
    )


def downgrade() -> None:
    op.drop_table("extension_flows")
