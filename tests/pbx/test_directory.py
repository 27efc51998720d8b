"""The configuration cache notices changes made by another process through the store."""

from __future__ import annotations

import asyncio
import time

from tongdai.keys import store_key
from tongdai.pbx.credentials import digest_keys
from tongdai.pbx.directory import CachedStore, DeviceDirectory
from tongdai.server import Pbx
from tongdai.store.protocol import Configuration
from tongdai.store.sql import open_store


async def test_a_change_elsewhere_drops_the_cache(pbx: Pbx) -> None:
    await pbx.directory.stop()  # no background poll: this test checks when it says so
    app = await pbx.store.create_app("d")
    await pbx.store.add_device(app.app_id, "alice", digest_keys("alice", "r", "first-password"))
    await pbx.directory.check()
    now = time.time()
    dev = await pbx.directory.get("alice", now)
    assert dev is not None
    old_ha1 = dev.ha1_md5
    assert await pbx.directory.get("bob", now) is None  # cached as unknown

    # the admin CLI, say
    other = await open_store(pbx.settings.db_url, key=store_key(pbx.settings.data_dir))
    try:
        await other.set_keys("alice", digest_keys("alice", "r", "second-password"))
        await other.add_device(app.app_id, "bob", digest_keys("bob", "r", "bob-password"))
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
    await pbx.store.add_device(app.app_id, "alice", digest_keys("alice", "r", "first-password"))
    before = await pbx.store.config_version()
    await pbx.location.flush()
    await pbx.store.purge_registrations(time.time())
    assert await pbx.store.config_version() == before
    await pbx.store.remove_device("alice")
    assert await pbx.store.config_version() > before


async def test_cached_store_answers_configuration_by_its_clock(pbx: Pbx) -> None:
    """``CachedStore`` is the ``Configuration`` the Open API reads: apps, devices and
    trunks from the cache, whose entries age by the injected clock, nothing else."""
    app = await pbx.store.create_app("d")
    await pbx.store.add_trunk(app.app_id, "t1", host="203.0.113.1")
    now = [1000.0]
    directory = DeviceDirectory(store=pbx.store, clock=lambda: now[0], ttl=60.0,
                                negative_ttl=5.0)
    cached: Configuration = CachedStore(directory)
    assert await cached.get_device("alice") is None  # remembered as unknown for 5 s
    assert [t.name for t in await cached.list_trunks(app.app_id)] == ["t1"]
    await pbx.store.add_device(app.app_id, "alice", digest_keys("alice", "r", "first-password"))
    await pbx.store.add_trunk(app.app_id, "t2", host="203.0.113.2")
    now[0] += 4.0
    assert await cached.get_device("alice") is None
    assert [t.name for t in await cached.list_trunks(app.app_id)] == ["t1"]
    now[0] += 2.0  # past the negative TTL, by the injected clock
    assert await cached.get_device("alice") is not None
    now[0] += 60.0
    assert [t.name for t in await cached.list_trunks(app.app_id)] == ["t1", "t2"]
    assert await cached.config_version() == await pbx.store.config_version()
    # Only configuration: storage's other concerns are not reachable through it.
    assert not hasattr(cached, "write_calls") and not hasattr(cached, "add_token")


class _CountingStore:
    """A ``Configuration`` that counts its device lookups and answers only when told."""

    def __init__(self) -> None:
        self.finds = 0
        self.release = asyncio.Event()

    async def find_device(self, app_id: str, name: str) -> None:
        self.finds += 1
        await self.release.wait()
        return None


async def test_misses_of_one_key_share_one_lookup() -> None:
    """A burst of calls to one outside number, its negative entry aged out: one query."""
    store = _CountingStore()
    directory = DeviceDirectory(store=store, clock=lambda: 0.0)  # type: ignore[arg-type]
    waiting = [asyncio.ensure_future(directory.find("app", "0901234567", 0.0))
               for _ in range(50)]
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.gather(*waiting) == [None] * 50
    assert store.finds == 1
    assert await directory.find("app", "0901234567", 1.0) is None  # cached now
    assert store.finds == 1
    assert await directory.find("app", "0901234567", 100.0) is None  # aged out: asks again
    assert store.finds == 2
