"""Opening a database: migrations on both dialects, SQLite's connection settings and
concurrent writers on one SQLite file."""

import asyncio
import gc
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from tests.store.support import STORE_KEY

from tongdai.pbx.credentials import digest_keys
from tongdai.store.engine import StoreClosedError, alembic_config
from tongdai.store.errors import SchemaAhead
from tongdai.store.models import Base
from tongdai.store.sql import open_store

TABLES = {"apps", "devices", "dids", "trunks", "registrations", "cdrs", "auth_tokens",
          "config_version", "cdr_daily", "call_checkpoints", "webhook_endpoints",
          "webhook_deliveries", "app_events", "app_event_seqs", "call_flows", "call_queues",
          "paused_agents", "admin_keys", "operators", "audit_log", "extension_flows"}


def _head() -> str | None:
    """The newest migration: opening a database must bring it there."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _schema_diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrations_build_exactly_the_models(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        assert await store.schema_revision() == _head()
        async with store._engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert tables == TABLES | {"alembic_version"}
            assert await conn.run_sync(_schema_diff) == []
            indexes = await conn.run_sync(
                lambda c: {i["name"]: i["column_names"] for i in inspect(c).get_indexes("cdrs")}
            )
        assert indexes["ix_cdrs_app_started"] == ["app_id", "started_at", "call_id"]
        assert indexes["ix_cdrs_app_recording"] == ["app_id", "recording"]
    finally:
        await store.close()
    # Opening again finds the schema current and keeps the data.
    store = await open_store(db_url, key=STORE_KEY)
    try:
        await store.create_app("kept")
    finally:
        await store.close()
    store = await open_store(db_url, key=STORE_KEY)
    try:
        assert [a.name for a in await store.list_apps()] == ["kept"]
    finally:
        await store.close()


async def test_downgrade_and_upgrade_again(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        def down_and_up(conn: Connection) -> set[str]:
            command.downgrade(alembic_config(conn), "base")
            left = set(inspect(conn).get_table_names())
            command.upgrade(alembic_config(conn), "head")
            return left

        async with store._engine.begin() as conn:
            assert await conn.run_sync(down_and_up) == {"alembic_version"}
        assert await store.schema_revision() == _head()
        assert await store.list_apps() == []
    finally:
        await store.close()


async def test_sqlite_file_settings(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "tongdai.sqlite3"
    store = await open_store(f"sqlite+aiosqlite:///{db}", key=STORE_KEY)
    try:
        assert db.exists()  # the data directory was created
        async with store._engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
        assert (mode, fks) == ("wal", 1)
        assert busy is not None and busy >= 1000
    finally:
        await store.close()


async def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    # The PBX and the admin CLI share the file: two engines (two pools) writing at
    # once must queue on the busy timeout, not fail with "database is locked".
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    first = await open_store(url, key=STORE_KEY)
    second = await open_store(url, key=STORE_KEY)
    try:
        app = await first.create_app("a")

        async def add(store_i: int, i: int) -> None:
            store = first if store_i == 0 else second
            await store.add_device(app.app_id, f"u{store_i}-{i}",
                                   digest_keys(f"u{store_i}-{i}", "r", "pw"))
            await store.rotate_secret(app.app_id)  # read, then write, in one transaction

        await asyncio.gather(*(add(i % 2, i) for i in range(30)))
        assert len(await second.list_devices(app.app_id)) == 30
    finally:
        await first.close()
        await second.close()


async def test_a_schema_newer_than_this_code_is_refused_in_one_line(db_url: str) -> None:
    # An old node (re)starting while a rolling upgrade has migrated the database.
    store = await open_store(db_url, key=STORE_KEY)
    try:
        async with store._engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await store.close()
    with pytest.raises(SchemaAhead, match=rf"at schema revision 9999, newer than this tongdai"
                       rf" knows \(up to {_head()}\): run the newer tongdai"):
        await open_store(db_url, key=STORE_KEY)


@pytest.mark.pg
async def test_connections_postgresql_closed_are_replaced_unnoticed(db_url: str) -> None:
    """A PostgreSQL restart (or an administrator) ends the pool's idle connections: the
    next reads and group-committed writes get new ones instead of failing."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's connections")
    store = await open_store(db_url, key=STORE_KEY)
    try:
        app = await store.create_app("acme")
        for _ in range(3):  # connections in the pool, reads and group commits both
            await asyncio.gather(store.list_apps(), store.create_app("other"))
        url = make_url(db_url)
        admin = await asyncpg.connect(user=url.username or "postgres", host=url.host,
                                      port=url.port or 5432, database="postgres")
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()", url.database)
        finally:
            await admin.close()
        assert ended >= 1
        await asyncio.sleep(0.2)  # the terminations reach the pool's connections
        assert app.app_id in {a.app_id for a in await store.list_apps()}
        again = await store.create_app("after")
        assert again.app_id in {a.app_id for a in await store.list_apps()}
    finally:
        await store.close()


async def test_close_waits_for_a_query_running_and_opens_nothing_after(db_url: str) -> None:
    """Closing the store while a task still reads lets that read finish and its
    connection come back before the pool goes: a connection left out then would be
    dropped unclosed. Once closed, nothing opens a connection again."""
    store = await open_store(db_url, key=STORE_KEY)
    engine = store._engine  # the store's own engine, as its readers use it
    released = asyncio.Event()

    async def long_read() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.3)  # a query still running as the store closes
        released.set()

    reader = asyncio.create_task(long_read())
    await asyncio.sleep(0.05)
    await store.close()
    assert released.is_set()  # close waited for it
    await reader
    with pytest.raises(StoreClosedError):
        await store.ping()
    gc.collect()  # an unclosed connection would warn here (an error in this suite)
