"""Initial schema: apps, devices, dids, trunks, registrations, cdrs, auth_tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _app_id() -> sa.Column[str]:
    return sa.Column("app_id", sa.String(32), nullable=False)


def _app_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["app_id"], ["apps.app_id"], name=f"fk_{table}_app_id_apps", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("app_secret", sa.String(128), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("record_calls", sa.Boolean(), nullable=False),
        sa.Column("default_did", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("app_id", name="pk_apps"),
    )
    op.create_table(
        "devices",
        sa.Column("sip_user", sa.String(64), nullable=False),
        _app_id(),
        sa.Column("realm", sa.String(255), nullable=False),
        sa.Column("ha1_md5", sa.String(32), nullable=False),
        sa.Column("ha1_sha256", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("extension", sa.String(8), nullable=True),
        _app_fk("devices"),
        sa.PrimaryKeyConstraint("sip_user", name="pk_devices"),
        sa.UniqueConstraint("app_id", "extension", name="uq_devices_app_id_extension"),
    )
    op.create_table(
        "dids",
        sa.Column("number", sa.String(20), nullable=False),
        _app_id(),
        sa.Column("sip_user", sa.String(64), nullable=False),
        _app_fk("dids"),
        sa.ForeignKeyConstraint(
            ["sip_user"], ["devices.sip_user"], name="fk_dids_sip_user_devices"
        ),
        sa.PrimaryKeyConstraint("number", name="pk_dids"),
    )
    op.create_index("ix_dids_app_id", "dids", ["app_id"])
    op.create_index("ix_dids_sip_user", "dids", ["sip_user"])
    op.create_table(
        "trunks",
        sa.Column("trunk_id", sa.Integer(), autoincrement=True, nullable=False),
        _app_id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("password", sa.String(128), nullable=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("strip", sa.Integer(), nullable=False),
        _app_fk("trunks"),
        sa.PrimaryKeyConstraint("trunk_id", name="pk_trunks"),
        sa.UniqueConstraint("app_id", "name", name="uq_trunks_app_id_name"),
    )
    op.create_table(
        "registrations",
        sa.Column("sip_user", sa.String(64), nullable=False),
        sa.Column("contact", sa.String(1024), nullable=False),
        sa.Column("source_host", sa.String(255), nullable=False),
        sa.Column("source_port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["sip_user"], ["devices.sip_user"], name="fk_registrations_sip_user_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sip_user", "contact", name="pk_registrations"),
    )
    op.create_index("ix_registrations_expires_at", "registrations", ["expires_at"])
    op.create_table(
        "cdrs",
        sa.Column("call_id", sa.String(255), nullable=False),
        _app_id(),
        sa.Column("caller", sa.JSON(), nullable=False),
        sa.Column("callee", sa.JSON(), nullable=False),
        sa.Column("klass", sa.String(16), nullable=False),
        sa.Column("did_number", sa.String(20), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("status_detail", sa.String(16), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("unix_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("billing_seconds", sa.Integer(), nullable=False),
        sa.Column("recording", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=False),
        sa.Column("sip_code", sa.Integer(), nullable=False),
        sa.Column("hangup_by", sa.String(16), nullable=False),
        sa.Column("sip_users", sa.JSON(), nullable=False),
        _app_fk("cdrs"),
        sa.PrimaryKeyConstraint("call_id", name="pk_cdrs"),
    )
    # The histories query: the app's window, newest first, call_id as the tiebreak.
    op.create_index(
        "ix_cdrs_app_started", "cdrs", ["app_id", sa.text("started_at DESC"), "call_id"]
    )
    op.create_index("ix_cdrs_app_recording", "cdrs", ["app_id", "recording"])
    op.create_table(
        "auth_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        _app_id(),
        sa.Column("sip_user", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _app_fk("auth_tokens"),
        sa.ForeignKeyConstraint(
            ["sip_user"], ["devices.sip_user"], name="fk_auth_tokens_sip_user_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_auth_tokens"),
    )
    op.create_index("ix_auth_tokens_app_user", "auth_tokens", ["app_id", "sip_user"])
    op.create_index("ix_auth_tokens_expires_at", "auth_tokens", ["expires_at"])


def downgrade() -> None:
    for table in ("auth_tokens", "cdrs", "registrations", "trunks", "dids", "devices", "apps"):
        op.drop_table(table)
