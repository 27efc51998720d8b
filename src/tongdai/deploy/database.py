"""A fresh PostgreSQL database for a topology, and its removal."""

from __future__ import annotations

import asyncio
import secrets

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


def create(admin_dsn: str) -> str:
    """Create an empty database through ``admin_dsn`` (a libpq URL of a role that may
    CREATE DATABASE); return tongdai's URL for it (asyncpg driver)."""
    name = f"tongdai_{secrets.token_hex(5)}"
    asyncio.run(_execute(admin_dsn, f'CREATE DATABASE "{name}"'))
    url = make_url(admin_dsn).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


def drop(admin_dsn: str, url: str) -> None:
    """Drop the database ``url`` names (connections still open are ended)."""
    name = make_url(url).database
    asyncio.run(_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(admin_dsn: str, sql: str) -> None:
    url = make_url(admin_dsn).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")  # no transaction
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()
