"""The administration tables: admin keys, console operators and the audit log.

Migration ``0010_admin`` creates them; importing this module (``store/sql.py`` does,
through ``AdminTables``) puts them in ``Base.metadata``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongdai.store.models import Base


class AdminKeyRow(Base):
    """A key for the admin API and the console. Only its SHA-256 is kept."""

    __tablename__ = "admin_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    # A key of one app (tenant) sees only that app; NULL: every app.
    app_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), nullable=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[float] = mapped_column(Double)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class OperatorRow(Base):
    """A person who signs in to the console with a password (hashed with scrypt)."""

    __tablename__ = "operators"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    app_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("apps.app_id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[float] = mapped_column(Double)


class AuditRow(Base):
    """One change to the configuration: who made it, what it was, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_app_seq", "app_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double)
    actor: Mapped[str] = mapped_column(String(100))
    # Not a foreign key: the log outlives a deleted app.
    app_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
