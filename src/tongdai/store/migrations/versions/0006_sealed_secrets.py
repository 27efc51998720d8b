"""Room for sealed secrets: app secrets and trunk passwords are stored encrypted.

The values themselves are sealed by ``SqlStore.seal_clear_secrets`` at the first start
with the store key (the key lives in the data dir, not in the database).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths, and changing a declared type there
    # means recreating the table: dropping "apps" would cascade to everything it owns
    # (see ``_sealed`` in store/models.py).
    if op.get_context().dialect.name == "sqlite":
        return
    op.alter_column("apps", "app_secret", type_=sa.String(255),
                    existing_type=sa.String(128), existing_nullable=False)
    op.alter_column("trunks", "password", type_=sa.String(1024),
                    existing_type=sa.String(128), existing_nullable=True)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    op.alter_column("trunks", "password", type_=sa.String(128),
                    existing_type=sa.String(1024), existing_nullable=True)
    op.alter_column("apps", "app_secret", type_=sa.String(128),
                    existing_type=sa.String(255), existing_nullable=False)
