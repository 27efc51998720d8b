"""A binding made over a websocket does not survive a restart: its connection is gone."""

from __future__ import annotations

from pathlib import Path

from tongdai.bus.memory import InProcessBus
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.location import Location
from tongdai.store.records import Registration
from tongdai.store.sql import open_store


async def test_websocket_bindings_are_offline_after_a_restart(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 't.sqlite3'}", key=b"k" * 32)
    try:
        app = await store.create_app("a")
        for user in ("desk", "browser"):
            await store.add_device(app.app_id, user, digest_keys(user, "d", "pw-secret-1"))
        bus = InProcessBus()
        now = 1_000_000.0
        first = Location(store=store, devices=store, bus=bus, wall_clock=lambda: now)
        for user, transport in (("desk", "udp"), ("browser", "ws")):
            first.apply(sip_user=user, app_id=app.app_id, remove=[], set_=[Registration(
                sip_user=user, contact=f"sip:{user}@10.0.0.5:5060", source_host="10.0.0.5",
                source_port=40000 if transport == "ws" else 5060, transport=transport,
                expires_at=now + 600)])
        await first.flush()
        assert first.is_registered("browser")
        fresh = Location(store=store, devices=store, bus=bus, wall_clock=lambda: now)
        assert await fresh.restore() == 1
        assert fresh.is_registered("desk")
        assert not fresh.is_registered("browser")
    finally:
        await store.close()
