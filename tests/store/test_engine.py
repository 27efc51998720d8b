"""Opening a database: migrations on both dialects, SQLite's connection settings and
concurrent writers on one SQLite file."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from tongdai.store.engine import alembic_config
from tongdai.store.models import Base
from tongdai.store.sql import open_store

TABLES = {"apps", "devices", "dids", "trunks", "registrations", "cdrs", "auth_tokens",
          "config_version", "cdr_daily"}


def _schema_diff(conn: Connection) -> list[object]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrations_build_exactly_the_models(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        assert await store.schema_revision() == "0003"
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
    store = await open_store(db_url)
    try:
        await store.create_app("kept")
    finally:
        await store.close()
    store = await open_store(db_url)
    try:
        assert [a.name for a in await store.list_apps()] == ["kept"]
    finally:
        await store.close()


async def test_downgrade_and_upgrade_again(db_url: str) -> None:
    store = await open_store(db_url)
    try:
        def down_and_up(conn: Connection) -> set[str]:
            command.downgrade(alembic_config(conn), "base")
            left = set(inspect(conn).get_table_names())
            command.upgrade(alembic_config(conn), "head")
            return left

        async with store._engine.begin() as conn:
            assert await conn.run_sync(down_and_up) == {"alembic_version"}
        assert await store.schema_revision() == "0003"
        assert await store.list_apps() == []
    finally:
        await store.close()


async def test_sqlite_file_settings(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "tongdai.sqlite3"
    store = await open_store(f"sqlite+aiosqlite:///{db}")
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
    first = await open_store(url)
    second = await open_store(url)
    try:
        app = await first.create_app("a")

        async def add(store_i: int, i: int) -> None:
            store = first if store_i == 0 else second
            await store.add_device(app.app_id, f"u{store_i}-{i}", "pw", realm="r")
            await store.rotate_secret(app.app_id)  # read, then write, in one transaction

        await asyncio.gather(*(add(i % 2, i) for i in range(30)))
        assert len(await second.list_devices(app.app_id)) == 30
    finally:
        await first.close()
        await second.close()
