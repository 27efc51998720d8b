"""Per-app daily CDR counts, so the histories total needs no full COUNT(*).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The UTC day of started_at, floor(started_at / 86400), in SQL that both dialects run
# (floor() is missing from SQLite builds without the math functions). The cast
# truncates towards zero on SQLite and rounds to nearest on PostgreSQL: either way the
# candidate is the day or the one after, and the one after is the one whose midnight
# lies after started_at. Matches ``utc_day`` in store/cdrs.py.
_CANDIDATE = "CAST(started_at / 86400 AS BIGINT)"
_DAY = f"{_CANDIDATE} - CASE WHEN {_CANDIDATE} * 86400 > started_at THEN 1 ELSE 0 END"


def upgrade() -> None:
    op.create_table(
        "cdr_daily",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.app_id"], name="fk_cdr_daily_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", "day", name="pk_cdr_daily"),
    )
    op.execute(
        f"INSERT INTO cdr_daily (app_id, day, count) "
        f"SELECT app_id, {_DAY}, COUNT(*) FROM cdrs GROUP BY app_id, {_DAY}"
    )


def downgrade() -> None:
    op.drop_table("cdr_daily")
