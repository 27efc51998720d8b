"""The database engine: connection settings per dialect and schema migrations.

SQLite (the embedded default) runs in WAL mode so the PBX and the admin CLI can use
the same file at once; writers start with ``BEGIN IMMEDIATE`` so two writers queue on
the busy timeout instead of failing when a read transaction upgrades to a write.
Within one process, SQLite's writers take turns on an asyncio lock first (see
``Database._turn``), so they never meet on the busy timeout.
PostgreSQL needs nothing special; concurrent migrations are serialised with an
advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Connection, CursorResult, Result, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import SingletonThreadPool

from tongdai import logs
from tongdai.store.errors import SchemaAhead
from tongdai.store.group_commit import GroupCommit, Write
from tongdai.store.models import ConfigVersion

log = logging.getLogger("tongdai.store")

HERE = Path(__file__).resolve().parent
# An execution option: transactions on an engine carrying it write (see module doc).
WRITE = "tongdai_write"
T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
# pg_advisory_xact_lock key for migrations: any constant that other software on a
# shared server is unlikely to pick ("tongdai" in ASCII, as an integer).
_MIGRATION_LOCK = 0x746F6E67646169


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///...`` or
    ``postgresql+asyncpg://...``), creating the SQLite file owner-only if needed."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        engine = create_async_engine(u)
        _drop_closed_connections(engine.sync_engine)
        return engine
    _private_file(u)
    engine = create_async_engine(u)
    _sqlite_setup(engine.sync_engine)
    return engine


def _drop_closed_connections(engine: Engine) -> None:
    """A pooled connection that the server closed (a PostgreSQL restart, an
    administrator's ``pg_terminate_backend``, an idle timeout) is replaced at checkout
    rather than handed out to fail.

    The driver has seen the close already: the event loop reads every connection's
    socket, idle or not, so asyncpg marks one closed when the server ends it. Checking
    that costs nothing, where SQLAlchemy's ``pool_pre_ping`` makes a round trip to the
    server on every checkout (on a busy event loop, a few milliseconds each). A
    connection cut off silently (no close reaches this host) is not detected here; its
    first query fails, and SQLAlchemy then replaces every connection of the pool.
    """

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        is_closed = getattr(driver, "is_closed", None)
        if is_closed is not None and is_closed():
            raise DisconnectionError("the server closed this connection")


def _sqlite_file_engine(u: URL) -> Engine | None:
    """A synchronous engine on the same SQLite file (None for an in-memory database,
    which another engine would not see), set up as the async one."""
    if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    engine = create_sync_engine(u.set(drivername="sqlite"), poolclass=SingletonThreadPool)
    _sqlite_setup(engine)
    return engine.execution_options(**{WRITE: True})


def _private_file(u: URL) -> None:
    """The SQLite file and its directory, readable by their owner only: the database
    holds call records and (sealed) secrets. SQLite gives the -wal and -shm files the
    database file's mode. A file an older tongdai made 0644 is tightened."""
    db = u.database or ""
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    path = Path(db).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        mode = 0
        try:
            mode = p.stat().st_mode & 0o777
            if mode & 0o077:
                p.chmod(mode & 0o700)
                logs.event(log, "store.file_mode_tightened", level=logging.WARNING,
                           path=str(p), was=oct(mode), now=oct(mode & 0o700))
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, and carry on
            logs.event(log, "store.file_mode_open", level=logging.WARNING, path=str(p),
                       mode=oct(mode), error=exc.strerror or str(exc))


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin
        # (the documented recipe for correct SAVEPOINT and transactional DDL).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
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
    cfg = alembic_config(conn)
    _refuse_newer_schema(conn, ScriptDirectory.from_config(cfg))
    command.upgrade(cfg, "head")


def _refuse_newer_schema(conn: Connection, scripts: ScriptDirectory) -> None:
    """An older tongdai meeting a schema migrated by a newer one stops with one line
    saying so, instead of Alembic's "Can't locate revision" traceback."""
    current = current_revision(conn)
    known = {script.revision for script in scripts.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaAhead(
            f"the database is at schema revision {current}, newer than this tongdai knows"
            f" (up to {scripts.get_current_head()}): run the newer tongdai, or downgrade"
            " the schema first (docs/upgrade.md)")


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


# How long ``close`` waits for connections in use to come back (a query running).
CLOSE_WAIT = 5.0


class StoreClosedError(RuntimeError):
    """The store was closed: it opens no connection any more."""


class Database:
    """Sessions on one engine: ``_read()`` and ``_write()`` are transactions that
    commit when the block ends (and roll back on an exception)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Records are built after commit, so loaded attributes must stay readable.
        self._reader = async_sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(**{WRITE: True})
        self._writer = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._serial = engine.dialect.name == "sqlite"
        self._turn_lock: asyncio.Lock | None = None
        self._turn_loop: asyncio.AbstractEventLoop | None = None
        self._group: GroupCommit | None = None
        self._group_loop: asyncio.AbstractEventLoop | None = None
        # SQLite: the group commit's transactions run whole in one thread, on their
        # own synchronous connection (see ``_write_core``).
        self._file: Engine | None = None
        # The group commit thread's connection, opened there on first use and kept: a
        # checkout from the pool and its reset on return cost more than a small write.
        self._file_conn: Connection | None = None
        self._file_thread: ThreadPoolExecutor | None = None
        event.listen(engine.sync_engine, "do_connect", self._refuse_once_closed)
        # Connections in use: ``close`` lets them come back before it disposes the pool
        # (a connection still out then would be dropped unclosed by a pool nobody owns).
        self._in_use = 0
        self._none_in_use: asyncio.Event | None = None  # set up by ``close``
        event.listen(engine.sync_engine, "checkout", self._checked_out)
        event.listen(engine.sync_engine, "checkin", self._checked_in)
        if self._serial:
            self._file = _sqlite_file_engine(engine.url)
            if self._file is not None:
                self._file_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    # Set by ``close``: SQLAlchemy would open new connections after a dispose, so a
    # closed store says so itself (``/readyz``).
    closed = False

    def _refuse_once_closed(self, *_: object) -> None:
        """No new connection once closed: a task still reading (a poll, a probe) would
        otherwise open one that nothing closes any more."""
        if self.closed:
            raise StoreClosedError("the store is closed")

    def _checked_out(self, *_: object) -> None:
        self._in_use += 1

    def _checked_in(self, *_: object) -> None:
        self._in_use -= 1
        if self._in_use == 0 and self._none_in_use is not None:
            self._none_in_use.set()

    async def close(self) -> None:
        self.closed = True
        if self._in_use > 0:
            self._none_in_use = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_in_use.wait(), CLOSE_WAIT)
        await self._engine.dispose()
        # A second close (a test's, say, after the server's own) finds the thread gone.
        thread, self._file_thread = self._file_thread, None
        if self._file is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close_file)
            thread.shutdown()

    async def ping(self) -> None:
        """A round trip to the database; raises when it cannot be reached."""
        async with self._engine.connect() as conn:
            await conn.execute(select(1))

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(current_revision)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as s, s.begin():
            yield s

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This process's turn to write.

        SQLite has one writer at a time. A connection that finds the write lock taken
        waits in SQLite's busy handler, which sleeps in growing steps (up to 100 ms)
        and so takes the lock up late, the database idle meanwhile; each waiting
        writer also holds a pooled connection that readers then lack. Writers of this
        process queue here instead, in order, without a connection, and each one
        starts the moment the one before commits. (Other processes, such as the admin
        CLI, still meet ours on the busy timeout.) PostgreSQL locks rows, not the
        database: its writers do not wait for each other here.
        """
        if not self._serial:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._turn_loop is not loop or self._turn_lock is None:
            self._turn_lock, self._turn_loop = asyncio.Lock(), loop
        async with self._turn_lock:
            yield

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        async with self._turn(), self._writer() as s, s.begin():
            yield s

    async def _write_core(self, write: Write[T]) -> T:
        """Run ``write`` (Core statements on a synchronous connection, no ORM) in a
        write transaction, for hot paths: the records of calls, whose commit a caller
        may be waiting for; the app event log; bindings. Writes that queue together
        share one commit (``group_commit``), each in its own SAVEPOINT; returns once
        committed. On SQLite the whole transaction is one call into a thread (not a
        round trip per statement); on PostgreSQL it runs on an async connection."""
        loop = asyncio.get_running_loop()
        if self._group_loop is not loop or self._group is None:
            self._group, self._group_loop = GroupCommit(self._run_write), loop
        return await self._group.write(write)

    async def _run_write(self, write: Callable[[Connection], T]) -> T:
        if self._file is None or self._file_thread is None:
            async with self._write_engine.begin() as conn:
                return await conn.run_sync(write)
        async with self._turn():
            return await asyncio.get_running_loop().run_in_executor(
                self._file_thread, self._in_file_transaction, write)

    def _in_file_transaction(self, write: Callable[[Connection], T]) -> T:
        assert self._file is not None
        conn = self._file_conn
        if conn is None:
            conn = self._file_conn = self._file.connect()
        try:
            with conn.begin():
                return write(conn)
        except BaseException:
            # Whatever went wrong may have left the connection unusable: a new one next.
            self._file_conn = None
            conn.close()
            raise

    def _close_file(self) -> None:
        """In the group commit thread: its connection closed, the engine disposed."""
        conn, self._file_conn = self._file_conn, None
        if conn is not None:
            conn.close()
        if self._file is not None:
            self._file.dispose()

    @asynccontextmanager
    async def _config_write(self) -> AsyncIterator[AsyncSession]:
        """A write to configuration: bumps the change counter in the same transaction."""
        async with self._turn(), self._writer() as s, s.begin():
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
