"""A cache of configuration (apps, devices, trunks) in front of the store.

The registrar answers thousands of REGISTERs a second and every call consults apps,
devices and trunks; asking the database each time would dominate. The store counts
configuration changes (``config_version``); the directory polls that one number every
``poll_interval`` seconds and drops everything it holds when it moves, so a change made
with the admin CLI (in another process) takes effect within about a second. Entries
also expire after ``ttl`` seconds as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tongdai.background import stop_task
from tongdai.clock import Clock
from tongdai.store.protocol import Configuration
from tongdai.store.records import AppRec, DeviceRec, DidRec, TrunkRec

log = logging.getLogger("tongdai.directory")

K = TypeVar("K")
V = TypeVar("V")


class _Cache(Generic[K, V]):
    def __init__(self, *, ttl: float, negative_ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._data: OrderedDict[K, tuple[V | None, float]] = OrderedDict()
        # Loads under way: a burst of misses of one key (every call to an outside
        # number once its negative entry ages out) waits for one query, not one each.
        self._loading: dict[K, asyncio.Future[V | None]] = {}

    def cached(self, key: K, now: float) -> tuple[bool, V | None]:
        entry = self._data.get(key)
        if entry is None:
            return False, None
        if now - entry[1] > (self.ttl if entry[0] is not None else self.negative_ttl):
            return False, None
        return True, entry[0]

    async def get(self, key: K, now: float, load: Callable[[], Awaitable[V | None]]) -> V | None:
        hit, value = self.cached(key, now)
        if hit:
            return value
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            value = await load()
        except BaseException as exc:
            if self._loading.get(key) is fut:
                del self._loading[key]
            if isinstance(exc, Exception):
                fut.set_exception(exc)
                fut.exception()  # those waiting get it; nobody waiting is no warning
            else:
                fut.cancel()
            raise
        if self._loading.get(key) is fut:  # not cleared meanwhile: still current
            del self._loading[key]
            self._data[key] = (value, now)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        fut.set_result(value)
        return value

    def clear(self) -> None:
        self._data.clear()
        self._loading.clear()


class DeviceDirectory:
    def __init__(
        self, *, store: Configuration, clock: Clock, ttl: float = 300.0,
        negative_ttl: float = 5.0, max_entries: int = 200_000, poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.clock = clock  # the wall clock: entries age by it
        self.poll_interval = poll_interval
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._devices: _Cache[str, DeviceRec] = _Cache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=max_entries)
        self._names: _Cache[tuple[str, str], DeviceRec] = _Cache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=max_entries)
        self._apps: _Cache[str, AppRec] = _Cache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=max_entries)
        self._trunks: _Cache[str | None, tuple[TrunkRec, ...]] = _Cache(
            ttl=ttl, negative_ttl=negative_ttl, max_entries=1000)

    def cached(self, sip_user: str, now: float) -> tuple[bool, DeviceRec | None]:
        """(hit, device) without I/O."""
        return self._devices.cached(sip_user, now)

    async def get(self, sip_user: str, now: float) -> DeviceRec | None:
        return await self._devices.get(sip_user, now, lambda: self.store.get_device(sip_user))

    async def find(self, app_id: str, name: str, now: float) -> DeviceRec | None:
        """The app's device whose sip_user or extension is ``name``."""
        return await self._names.get(
            (app_id, name), now, lambda: self.store.find_device(app_id, name)
        )

    async def app(self, app_id: str, now: float) -> AppRec | None:
        return await self._apps.get(app_id, now, lambda: self.store.get_app(app_id))

    async def trunks(self, app_id: str | None, now: float) -> Sequence[TrunkRec]:
        async def load() -> tuple[TrunkRec, ...]:
            return tuple(await self.store.list_trunks(app_id))

        return await self._trunks.get(app_id, now, load) or ()

    @property
    def version(self) -> int | None:
        """The configuration version the caches hold (None before the first check)."""
        return self._version

    def clear(self) -> None:
        for cache in (self._devices, self._names, self._apps, self._trunks):
            cache.clear()

    async def check(self) -> bool:
        """Drop the caches if the configuration changed since the last check."""
        version = await self.store.config_version()
        changed = self._version is not None and version != self._version
        if changed or self._version is None:
            self.clear()
        self._version = version
        return changed

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.check()
            except Exception as exc:  # the database is away: keep serving from cache
                log.warning("configuration check failed: %s", exc)


class CachedStore:
    """``Configuration`` with the reads a request makes answered by a
    ``DeviceDirectory``.

    Handed to the Open API so that authenticating a request (app, device) and
    checking a click-to-call (device, trunks) cost no database round trip.
    """

    def __init__(self, directory: DeviceDirectory) -> None:
        self._directory = directory

    async def config_version(self) -> int:
        return await self._directory.store.config_version()

    async def get_app(self, app_id: str) -> AppRec | None:
        return await self._directory.app(app_id, self._directory.clock())

    async def get_device(self, sip_user: str) -> DeviceRec | None:
        return await self._directory.get(sip_user, self._directory.clock())

    async def find_device(self, app_id: str, name: str) -> DeviceRec | None:
        return await self._directory.find(app_id, name, self._directory.clock())

    async def get_did(self, number: str) -> DidRec | None:
        return await self._directory.store.get_did(number)

    async def list_trunks(self, app_id: str | None = None) -> Sequence[TrunkRec]:
        return await self._directory.trunks(app_id, self._directory.clock())
