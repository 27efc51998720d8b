"""Call-centre routing: flows on DIDs, queues of agents, paused agents.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_flows",
        sa.Column("did_number", sa.String(20), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["did_number"], ["dids.number"], name="fk_call_flows_did_number_dids",
            ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.app_id"], name="fk_call_flows_app_id_apps", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("did_number", name="pk_call_flows"),
    )
    op.create_index("ix_call_flows_app_id", "call_flows", ["app_id"])
    op.create_table(
        "call_queues",
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("agents", sa.Text(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("max_wait", sa.Integer(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=False),
        sa.Column("ring_timeout", sa.Integer(), nullable=False),
        sa.Column("wrapup", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.app_id"], name="fk_call_queues_app_id_apps", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "name", name="pk_call_queues"),
    )
    op.create_table(
        "paused_agents",
        sa.Column("sip_user", sa.String(64), nullable=False),
        sa.Column("paused_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sip_user"], ["devices.sip_user"], name="fk_paused_agents_sip_user_devices",
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sip_user", name="pk_paused_agents"),
    )


def downgrade() -> None:
    op.drop_table("paused_agents")
    op.drop_table("call_queues")
    op.drop_index("ix_call_flows_app_id", table_name="call_flows")
    op.drop_table("call_flows")
