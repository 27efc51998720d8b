"""What a copy of the database or of the data dir gives away: app secrets and trunk
passwords are sealed with the data dir's key, and the files are owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.store.support import STORE_KEY

from tongdai.server import build, http_app, shutdown
from tongdai.settings import load_settings
from tongdai.store.sealing import KeyMismatch, SecretBox
from tongdai.store.sql import SqlStore, open_store

OTHER_KEY = b"another-data-dir-another-key-32b"


async def _raw(engine: AsyncEngine, sql: str) -> list[tuple[object, ...]]:
    """Rows as the database holds them (SQLAlchemy Core, no store code)."""
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def test_secrets_are_sealed_in_the_rows_and_open_where_used(store: SqlStore) -> None:
    app = await store.create_app("acme")
    await store.add_trunk(app.app_id, "carrier", host="10.0.0.1", username="acct",
                          password="trunk-password-1")
    secret = app.app_secret.reveal()
    [(stored_secret,)] = await _raw(store._engine, "SELECT app_secret FROM apps")
    [(stored_pw,)] = await _raw(store._engine, "SELECT password FROM trunks")
    for stored, clear in ((stored_secret, secret), (stored_pw, "trunk-password-1")):
        assert isinstance(stored, str) and stored.startswith("enc1:")
        assert clear not in stored
    # Read back, the records open to the clear values ...
    got = await store.get_app(app.app_id)
    assert got is not None and got.app_secret.reveal() == secret
    [trunk] = await store.list_trunks(app.app_id)
    assert trunk.password is not None and trunk.password.reveal() == "trunk-password-1"
    # ... and never show them by accident.
    assert secret not in repr(got) and "trunk-password-1" not in repr(trunk)
    with pytest.raises(TypeError, match="reveal"):
        f"{got.app_secret}"
    rotated = await store.rotate_secret(app.app_id)
    [(after,)] = await _raw(store._engine, "SELECT app_secret FROM apps")
    assert after.startswith("enc1:") and rotated.app_secret.reveal() not in after


async def test_clear_values_of_an_older_tongdai_are_sealed_at_the_next_start(
    db_url: str,
) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        app = await store.create_app("old")
        trunk = await store.add_trunk(app.app_id, "carrier", host="10.0.0.1", username="u",
                                      password="x")
        # What an older tongdai wrote: the values in clear.
        async with store._engine.begin() as conn:
            await conn.execute(text("UPDATE apps SET app_secret = :s"), {"s": "a" * 64})
            await conn.execute(text("UPDATE trunks SET password = :p"), {"p": "old-clear-pw"})
        # Still usable as they are ...
        got = await store.get_app(app.app_id)
        assert got is not None and got.app_secret.reveal() == "a" * 64
    finally:
        await store.close()
    # ... and sealed when the next process opens the database.
    store = await open_store(db_url, key=STORE_KEY)
    try:
        [(s,)] = await _raw(store._engine, "SELECT app_secret FROM apps")
        [(p,)] = await _raw(store._engine, "SELECT password FROM trunks")
        assert s.startswith("enc1:") and p.startswith("enc1:") and "old-clear-pw" not in p
        got = await store.get_app(app.app_id)
        assert got is not None and got.app_secret.reveal() == "a" * 64
        [t] = await store.list_trunks(app.app_id)
        assert t.trunk_id == trunk.trunk_id
        assert t.password is not None and t.password.reveal() == "old-clear-pw"
    finally:
        await store.close()


async def test_another_key_is_refused_at_start_with_what_to_do(db_url: str) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        await store.create_app("a")
    finally:
        await store.close()
    with pytest.raises(KeyMismatch, match=r"same secrets/store\.key"):
        await open_store(db_url, key=OTHER_KEY)


async def test_a_sealed_value_copied_to_another_row_does_not_open(store: SqlStore) -> None:
    a, b = await store.create_app("a"), await store.create_app("b")
    async with store._engine.begin() as conn:
        await conn.execute(
            text("UPDATE apps SET app_secret = (SELECT app_secret FROM apps WHERE app_id = :a)"
                 " WHERE app_id = :b"), {"a": a.app_id, "b": b.app_id})
    moved = await store.get_app(b.app_id)
    assert moved is not None
    with pytest.raises(KeyMismatch):
        moved.app_secret.reveal()


def test_the_format_is_versioned_and_long_secrets_fit() -> None:
    box = SecretBox(STORE_KEY)
    sealed = box.seal("p" * 128, "trunks.password:1")
    assert sealed.startswith("enc1:") and len(sealed) <= 1024
    assert len(box.seal("f" * 64, "apps.app_secret:" + "a" * 20)) <= 128  # SQLite's column
    assert box.open(sealed, "trunks.password:1") == "p" * 128
    assert box.open("clear", "trunks.password:1") == "clear"  # before sealing existed
    with pytest.raises(KeyMismatch):
        box.open("enc1:not-base64!", "trunks.password:1")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_a_fresh_start_makes_the_data_dir_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "new" / "tongdai-data"
    settings = load_settings(data_dir=data, sip_port=0, rtp_ports="42200-42299")
    pbx = await build(settings)
    try:
        http_app(pbx)  # makes the recording-URL key
        db = data / "tongdai.sqlite3"
        assert _mode(data) == 0o700
        assert _mode(data / "secrets") == 0o700
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert f.exists() and _mode(f) == 0o600, f
        keys = sorted(p.name for p in (data / "secrets").iterdir())
        assert {"recording.key", "sip-nonce.key", "store.key"} <= set(keys)
        assert all(_mode(data / "secrets" / k) == 0o600 for k in keys)
    finally:
        await shutdown(pbx)


async def test_a_world_readable_database_is_tightened_at_start(tmp_path: Path) -> None:
    db = tmp_path / "tongdai.sqlite3"
    with sqlite3.connect(db) as conn:  # as an older tongdai left it
        conn.execute("PRAGMA journal_mode=WAL")
    os.chmod(db, 0o644)
    store = await open_store(f"sqlite+aiosqlite:///{db}", key=STORE_KEY)
    try:
        await store.create_app("a")
        assert _mode(db) == 0o600
        assert _mode(db.with_name(db.name + "-wal")) == 0o600
    finally:
        await store.close()


async def test_after_a_lost_key_apps_get_new_secrets_and_trunks_lose_passwords(
    db_url: str,
) -> None:
    store = await open_store(db_url, key=STORE_KEY)
    try:
        app = await store.create_app("a")
        await store.add_trunk(app.app_id, "carrier", host="10.0.0.1", username="u",
                              password="gone")
        await store.add_trunk(app.app_id, "open", host="10.0.0.2")
    finally:
        await store.close()
    store = await open_store(db_url, key=OTHER_KEY, reseal=False)
    try:
        done = await store.reseal(replace_unreadable=True)
        assert done.new_secrets == (app.app_id,)
        assert done.dropped_passwords == ((app.app_id, "carrier"),)
        got = await store.get_app(app.app_id)
        assert got is not None and len(got.app_secret.reveal()) == 64
        assert [t.password for t in await store.list_trunks(app.app_id)] == [None, None]
    finally:
        await store.close()
    await (await open_store(db_url, key=OTHER_KEY)).close()  # the new key opens all now
