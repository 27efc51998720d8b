"""ORM tables. They stay inside the store: callers get the frozen records of
``store/records.py``. Times are unix seconds (double precision) so SQLite and
PostgreSQL behave the same and no time zone is ever guessed.

A change here needs a migration in ``store/migrations/versions/``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations can refer to them on both dialects.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _app_fk() -> ForeignKey:
    # Deleting an app deletes everything it owns: the tenant is gone.
    return ForeignKey("apps.app_id", ondelete="CASCADE")


class App(Base):
    __tablename__ = "apps"

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_secret: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Double)
    record_calls: Mapped[bool] = mapped_column(Boolean, default=True)
    default_did: Mapped[str | None] = mapped_column(String(20), nullable=True)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("app_id", "extension"),)

    # Globally unique: a REGISTER names only the user, not the app.
    sip_user: Mapped[str] = mapped_column(String(64), primary_key=True)
    # (app_id, extension) is unique, so its index also serves "the app's devices".
    app_id: Mapped[str] = mapped_column(String(32), _app_fk())
    realm: Mapped[str] = mapped_column(String(255))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    extension: Mapped[str | None] = mapped_column(String(8), nullable=True)


class Did(Base):
    __tablename__ = "dids"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32), _app_fk(), index=True)
    # No cascade from devices: removing a device that still answers a DID is refused,
    # so a company number never silently stops ringing anywhere.
    sip_user: Mapped[str] = mapped_column(String(64), ForeignKey("devices.sip_user"), index=True)


class Trunk(Base):
    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    trunk_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(32), _app_fk())
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Sent to the carrier in a digest answer, so it must be kept as written.
    password: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prefix: Mapped[str] = mapped_column(String(16), default="")
    strip: Mapped[int] = mapped_column(Integer, default=0)


class RegistrationRow(Base):
    __tablename__ = "registrations"

    sip_user: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.sip_user", ondelete="CASCADE"), primary_key=True
    )
    contact: Mapped[str] = mapped_column(String(1024), primary_key=True)
    source_host: Mapped[str] = mapped_column(String(255))
    source_port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    call_id: Mapped[str] = mapped_column(String(255), default="")
    cseq: Mapped[int] = mapped_column(Integer, default=0)
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class CdrRow(Base):
    __tablename__ = "cdrs"
    __table_args__ = (
        # play_recording: the app's CDR that owns a recording file.
        Index("ix_cdrs_app_recording", "app_id", "recording"),
    )

    call_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32), _app_fk())
    caller: Mapped[dict[str, Any]] = mapped_column(JSON)
    callee: Mapped[dict[str, Any]] = mapped_column(JSON)
    klass: Mapped[str] = mapped_column(String(16))
    did_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    direction: Mapped[str] = mapped_column(String(8))
    status_detail: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[int] = mapped_column(Integer)
    unix_timestamp: Mapped[int] = mapped_column(BigInteger)
    billing_seconds: Mapped[int] = mapped_column(Integer)
    recording: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[float] = mapped_column(Double)
    answered_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    ended_at: Mapped[float] = mapped_column(Double)
    sip_code: Mapped[int] = mapped_column(Integer, default=0)
    hangup_by: Mapped[str] = mapped_column(String(16), default="")
    sip_users: Mapped[list[str]] = mapped_column(JSON)


# histories: WHERE app_id = ? AND started_at BETWEEN ? AND ?
#            ORDER BY started_at DESC, call_id LIMIT ? OFFSET ?
Index("ix_cdrs_app_started", CdrRow.app_id, CdrRow.started_at.desc(), CdrRow.call_id)


class CdrDaily(Base):
    """How many CDRs each app has per UTC day (``day`` = floor(started_at / 86400)),
    kept by ``add_cdr``/``add_cdrs`` in the CDR's own transaction.

    The histories ``total`` must be exact, and counting a month of a busy app's CDRs
    through the index costs tens of milliseconds; summing ~30 of these rows and
    counting only the two partial edge days costs well under one.
    """

    __tablename__ = "cdr_daily"

    app_id: Mapped[str] = mapped_column(String(32), _app_fk(), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger)


class AuthToken(Base):
    __tablename__ = "auth_tokens"
    __table_args__ = (Index("ix_auth_tokens_app_user", "app_id", "sip_user"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32), _app_fk())
    sip_user: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.sip_user", ondelete="CASCADE")
    )
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ConfigVersion(Base):
    """One row counting changes to apps, devices, DIDs and trunks.

    Running servers cache configuration and poll this number to know when to drop
    their caches: a change made by the admin CLI takes effect within a second.
    """

    __tablename__ = "config_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
