"""The database engine: connection settings per dialect and schema migrations.

SQLite (the embedded default) runs in WAL mode so the PBX and the admin CLI can use
the same file at once; writers start with ``BEGIN IMMEDIATE`` so two writers queue on
the busy timeout instead of failing when a read transaction upgrades to a write.
PostgreSQL needs nothing special; concurrent migrations are serialised with an
advisory lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import URL, Connection, CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tongdai.store.models import ConfigVersion

HERE = Path(__file__).resolve().parent
# An execution option: transactions on an engine carrying it write (see module doc).
WRITE = "tongdai_write"
BUSY_TIMEOUT_MS = 10_000
# pg_advisory_xact_lock key for migrations: any constant that other software on a
# shared server is unlikely to pick ("tongdai" in ASCII, as an integer).
_MIGRATION_LOCK = 0x746F6E67646169


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///...`` or
    ``postgresql+asyncpg://...``), creating the SQLite file's directory if needed."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return create_async_engine(u, pool_pre_ping=True)
    _make_parent(u)
    engine = create_async_engine(u)
    _sqlite_setup(engine)
    return engine


def _make_parent(u: URL) -> None:
    db = u.database or ""
    if db and db != ":memory:" and not db.startswith("file:"):
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin
        # (the documented recipe for correct SAVEPOINT and transactional DDL).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes gets SQLITE_BUSY at once,
        # without waiting, if another connection wrote in between; IMMEDIATE takes the
        # write lock up front, through the busy timeout.
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
    command.upgrade(alembic_config(conn), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration, in one transaction."""
    async with engine.execution_options(**{WRITE: True}).begin() as conn:
        await conn.run_sync(_upgrade)


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched: ``AsyncSession.execute`` returns a
    CursorResult for those, though it is typed as a plain Result."""
    return cast("CursorResult[Any]", result).rowcount


class Database:
    """Sessions on one engine: ``_read()`` and ``_write()`` are transactions that
    commit when the block ends (and roll back on an exception)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Records are built after commit, so loaded attributes must stay readable.
        self._reader = async_sessionmaker(engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def close(self) -> None:
        await self._engine.dispose()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(current_revision)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as s, s.begin():
            yield s

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        async with self._writer() as s, s.begin():
            yield s

    @asynccontextmanager
    async def _config_write(self) -> AsyncIterator[AsyncSession]:
        """A write to configuration: bumps the change counter in the same transaction."""
        async with self._writer() as s, s.begin():
            yield s
            await s.execute(
                update(ConfigVersion).where(ConfigVersion.id == 1)
                .values(version=ConfigVersion.version + 1)
            )

    async def config_version(self) -> int:
        """The configuration change counter (see ``ConfigVersion``)."""
        async with self._engine.connect() as conn:
            v = await conn.scalar(select(ConfigVersion.version).where(ConfigVersion.id == 1))
            return int(v or 0)
