"""The configuration cache notices changes made by another process through the store."""

from __future__ import annotations

import time

from tongdai.server import Pbx
from tongdai.store.sql import open_store


async def test_a_change_elsewhere_drops_the_cache(pbx: Pbx) -> None:
    app = await pbx.store.create_app("d")
    await pbx.store.add_device(app.app_id, "alice", "first-password", realm="r")
    await pbx.directory.check()
    now = time.time()
    dev = await pbx.directory.get("alice", now)
    assert dev is not None
    old_ha1 = dev.ha1_md5
    assert await pbx.directory.get("bob", now) is None  # cached as unknown

    other = await open_store(pbx.settings.db_url)  # the admin CLI, say
    try:
        await other.set_password("alice", "second-password", realm="r")
        await other.add_device(app.app_id, "bob", "bob-password", realm="r")
    finally:
        await other.close()

    # until the directory checks, it serves what it has
    assert (await pbx.directory.get("alice", now)).ha1_md5 == old_ha1  # type: ignore[union-attr]
    assert await pbx.directory.check() is True
    fresh = await pbx.directory.get("alice", now)
    assert fresh is not None and fresh.ha1_md5 != old_ha1
    assert await pbx.directory.get("bob", now) is not None
    assert await pbx.directory.check() is False  # nothing changed since


async def test_registrations_do_not_count_as_configuration(pbx: Pbx) -> None:
    app = await pbx.store.create_app("d")
    await pbx.store.add_device(app.app_id, "alice", "first-password", realm="r")
    before = await pbx.store.config_version()
    await pbx.location.flush()
    await pbx.store.purge_registrations(time.time())
    assert await pbx.store.config_version() == before
    await pbx.store.remove_device("alice")
    assert await pbx.store.config_version() > before
