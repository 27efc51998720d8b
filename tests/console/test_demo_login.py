"""The demo's console operator: made once, its password shown at every start while it
still opens the console."""

from __future__ import annotations

from pathlib import Path

from tongdai.admin.credentials import hash_password, password_matches
from tongdai.admin.demo import OPERATOR, console_login
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore


async def test_made_once_then_read_back(store: SqlStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = await console_login(store, settings)
    assert first is not None and first["name"] == OPERATOR and first["password"]
    op = await store.get_operator(OPERATOR)
    assert op is not None and op.app_id is None
    assert password_matches(first["password"], op.password_hash)
    assert first["password"] not in op.password_hash  # only scrypt is stored
    path = settings.data_dir / "secrets" / "demo-console.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert await console_login(store, settings) == first
    # Changed by hand: the stale password is not shown.
    await store.set_operator_password(OPERATOR, hash_password("another-password"))
    assert await console_login(store, settings) == {"name": OPERATOR, "password": None}
