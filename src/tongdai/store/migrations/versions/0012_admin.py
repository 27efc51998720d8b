"""Administration: admin API keys, console operators and the audit log of changes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.app_id"], ondelete="CASCADE",
                                name="fk_admin_keys_app_id_apps"),
        sa.PrimaryKeyConstraint("key_id", name="pk_admin_keys"),
    )
    op.create_table(
        "operators",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.app_id"], ondelete="CASCADE",
                                name="fk_operators_app_id_apps"),
        sa.PrimaryKeyConstraint("name", name="pk_operators"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_app_seq", "audit_log", ["app_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_app_seq", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("operators")
    op.drop_table("admin_keys")
