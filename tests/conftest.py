"""Shared fixtures: a real database for every storage-backed test.

``store`` and ``db_url`` are parametrised over the embedded SQLite (a file under the
test's tmp_path) and PostgreSQL (a fresh database per test, dropped afterwards).
PostgreSQL is reached through ``TONGDAI_TEST_PG`` (an admin DSN; default
``postgresql://postgres@127.0.0.1:5432/postgres``). When it is unreachable the
PostgreSQL cases are skipped locally, and fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

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


async def _pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; its SQLAlchemy async URL."""
    name = f"tongdai_t_{secrets.token_hex(6)}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = make_url(PG_ADMIN_DSN).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        admin = await _pg_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    """An SQLAlchemy async URL of an empty database (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{os.path.join(tmp_path, 'db', 'tongdai.sqlite3')}"
        return
    async for url in _pg_database():
        yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    """An opened, migrated SqlStore on an empty database."""
    st = await open_store(db_url)
    try:
        yield st
    finally:
        await st.close()
