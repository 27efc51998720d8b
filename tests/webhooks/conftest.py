"""Fixtures shared by the webhook tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.store.support import STORE_KEY

from tongdai.store.sql import SqlStore, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A fresh SQLite store."""
    st = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", key=STORE_KEY)
    try:
        yield st
    finally:
        await st.close()
