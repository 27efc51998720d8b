"""Alembic environment. ``tongdai.store.sql`` hands in an open connection (in
``config.attributes["connection"]``); the ``alembic`` command line builds an async
engine from ``-x url=...`` or from tongdai's settings (``TONGDAI_DATABASE_URL``...)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tongdai.settings import load_settings
from tongdai.store.models import Base

config = context.config
target_metadata = Base.metadata


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_migrate)
            await conn.commit()
    finally:
        await engine.dispose()


def _run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or load_settings().db_url
    asyncio.run(_migrate_url(url))


if context.is_offline_mode():
    raise SystemExit("tongdai's migrations run online only")
_run()
