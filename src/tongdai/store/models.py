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
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from tongdai import numbers

# Stable constraint names, so migrations can refer to them on both dialects.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sealed(length: int) -> TypeEngine[str]:
    # SQLite ignores VARCHAR lengths, so its tables keep the 128 of the first schema:
    # changing a declared type there means recreating the table, and dropping "apps"
    # would cascade to everything the apps own (migration 0006).
    return String(length).with_variant(String(128), "sqlite")


def _app_fk() -> ForeignKey:
    # Deleting an app deletes everything it owns: the tenant is gone.
    return ForeignKey("apps.app_id", ondelete="CASCADE")


class App(Base):
    __tablename__ = "apps"

    app_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Sealed (encrypted) with the data dir's store key: see store/sealing.py.
    app_secret: Mapped[str] = mapped_column(_sealed(255))
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
    # Sent to the carrier in a digest answer, so it must be recoverable: sealed
    # (encrypted) with the data dir's store key, see store/sealing.py.
    password: Mapped[str | None] = mapped_column(_sealed(1024), nullable=True)
    prefix: Mapped[str] = mapped_column(String(16), default="")
    strip: Mapped[int] = mapped_column(Integer, default=0)
    # Outbound routing: the number prefixes the trunk serves, comma-separated in the
    # national form ("09,03", "+" for abroad); empty serves every number. Among the
    # trunks that serve a number, lower ``priority`` is tried first.
    routes: Mapped[str] = mapped_column(String(255), default="", server_default="")
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


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
    # The node (``pbx/recovery.node_id``) that holds the binding; "" before 0013.
    node: Mapped[str] = mapped_column(String(32), default="", server_default="")
    # The REGISTER's Path values (RFC 3327), one a line; "" without (and before 0014).
    path: Mapped[str] = mapped_column(Text, default="", server_default="")


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
    # The caller's and callee's number in the national form (``numbers.normalize``),
    # for history search: a CRM's 01693608879 finds the call the carrier presented as
    # +84393608879. Filled from ``caller`` / ``callee`` on insert (see
    # ``search_number``), so every writer of CDRs gets them without knowing.
    caller_number: Mapped[str | None] = mapped_column(
        String(32), nullable=True, default=lambda ctx: _party_number(ctx, "caller"))
    callee_number: Mapped[str | None] = mapped_column(
        String(32), nullable=True, default=lambda ctx: _party_number(ctx, "callee"))
    # Click-to-call correlation: the integrator's own id for the call and its small
    # metadata object (``api/correlation.py`` bounds both); NULL for other calls.
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    call_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


def search_number(party: object) -> str | None:
    """The national form of a CDR party's ``number``, or None when it has none."""
    number = party.get("number") if isinstance(party, dict) else None
    if not isinstance(number, str):
        return None
    try:
        return numbers.normalize(number)[:32]
    except ValueError:
        return None


def _party_number(ctx: Any, key: str) -> str | None:
    return search_number(ctx.get_current_parameters().get(key))


# histories: WHERE app_id = ? AND started_at BETWEEN ? AND ?
#            ORDER BY started_at DESC, call_id LIMIT ? OFFSET ?
Index("ix_cdrs_app_started", CdrRow.app_id, CdrRow.started_at.desc(), CdrRow.call_id)
# histories?phone=: one branch per index, each WHERE app_id = ? AND caller_number = ?
# (callee_number = ?) AND started_at BETWEEN ? AND ? in histories order, merged. In
# that order, so the planner needs no statistics to prefer them to the window index.
Index("ix_cdrs_app_caller_number", CdrRow.app_id, CdrRow.caller_number,
      CdrRow.started_at.desc(), CdrRow.call_id)
Index("ix_cdrs_app_callee_number", CdrRow.app_id, CdrRow.callee_number,
      CdrRow.started_at.desc(), CdrRow.call_id)
# histories?external_id=: partial, so the calls without one (most) cost it nothing.
Index("ix_cdrs_app_external_id", CdrRow.app_id, CdrRow.external_id,
      CdrRow.started_at.desc(), CdrRow.call_id,
      sqlite_where=CdrRow.external_id.is_not(None),
      postgresql_where=CdrRow.external_id.is_not(None))


class CdrDaily(Base):
    """How many CDRs each app has per UTC day (``day`` = floor(started_at / 86400)),
    kept by ``add_cdr``/``write_calls`` in the CDR's own transaction.

    The histories ``total`` must be exact, and counting a month of a busy app's CDRs
    through the index costs tens of milliseconds; summing ~30 of these rows and
    counting only the two partial edge days costs well under one.
    """

    __tablename__ = "cdr_daily"

    app_id: Mapped[str] = mapped_column(String(32), _app_fk(), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(BigInteger)


class CallCheckpointRow(Base):
    """An answered call in progress (``records.CallCheckpoint``): what its CDR would
    say if the server died now. Deleted in the transaction that stores the CDR."""

    __tablename__ = "call_checkpoints"

    call_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(32), _app_fk())
    # The refresh is one UPDATE ... WHERE node = ? AND ended_at IS NULL.
    node: Mapped[str] = mapped_column(String(64), index=True)
    caller: Mapped[dict[str, Any]] = mapped_column(JSON)
    callee: Mapped[dict[str, Any]] = mapped_column(JSON)
    klass: Mapped[str] = mapped_column(String(16))
    did_number: Mapped[str | None] = mapped_column(String(20), nullable=True)
    direction: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[float] = mapped_column(Double)
    answered_at: Mapped[float] = mapped_column(Double)
    checkpoint_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    hangup_by: Mapped[str] = mapped_column(String(16), default="")
    recording: Mapped[str] = mapped_column(String(255), default="")
    sip_users: Mapped[list[str]] = mapped_column(JSON)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    call_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


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

