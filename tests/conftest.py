"""Shared fixtures: a real database for every storage-backed test.

``store`` and ``db_url`` are parametrised over the embedded SQLite (a file under the
test's tmp_path) and PostgreSQL (a fresh database per test, dropped afterwards).
PostgreSQL is reached through ``TONGDAI_TEST_PG`` (an admin DSN; default
``postgresql://postgres@127.0.0.1:5432/postgres``). When it is unreachable the
PostgreSQL cases are skipped locally, and fail when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tests.store.support import STORE_KEY

from tongdai.store.sql import SqlStore, open_store

PG_ADMIN_DSN = os.environ.get(
    "TONGDAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        msg = f"PostgreSQL at {PG_ADMIN_DSN} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


async def _create_database(template: str | None = None) -> str:
    name = f"tongdai_t_{secrets.token_hex(6)}"
    admin = await _pg_admin()
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return name


async def _drop_database(name: str) -> None:
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _pg_url(name: str) -> str:
    url = make_url(PG_ADMIN_DSN).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def _pg_database(template: str | None = None) -> AsyncIterator[str]:
    """A new PostgreSQL database for one test (a copy of ``template`` if given);
    yields its SQLAlchemy async URL and drops it afterwards."""
    name = await _create_database(template)
    try:
        yield _pg_url(name)
    finally:
        await _drop_database(name)


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[list[str]]:
    """Holds the name of a migrated template database, made by the first test that
    needs it: copying it is cheaper than migrating a fresh database every time."""
    made: list[str] = []
    yield made
    for name in made:
        asyncio.run(_drop_database(name))


async def _template(made: list[str]) -> str:
    if not made:
        name = await _create_database()
        made.append(name)
        st = await open_store(_pg_url(name), key=STORE_KEY)
        await st.close()
    return made[0]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    """The SQLAlchemy async URL of a new, empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{os.path.join(tmp_path, 'db', 'tongdai.sqlite3')}"
        return
    async for url in _pg_database():
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def store(
    request: pytest.FixtureRequest, tmp_path: os.PathLike[str], _pg_template: list[str]
) -> AsyncIterator[SqlStore]:
    """An opened SqlStore on a new database with the current schema and no rows."""
    if request.param == "sqlite":
        st = await open_store(
            f"sqlite+aiosqlite:///{os.path.join(tmp_path, 'tongdai.sqlite3')}", key=STORE_KEY)
        try:
            yield st
        finally:
            await st.close()
        return
    async for url in _pg_database(template=await _template(_pg_template)):
        st = await open_store(url, key=STORE_KEY)
        try:
            yield st
        finally:
            await st.close()


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Tests that run the CLI in-process configure the root logger onto the test's
    captured stderr; put the root logger back so no later test logs to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and type(handler) is logging.StreamHandler:  # not pytest's
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
