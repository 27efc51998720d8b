"""A short-lived cache of devices in front of the store.

The registrar answers thousands of REGISTERs a second; asking the database each time
would dominate. Entries live ``ttl`` seconds (30 by default), so changes made with the admin CLI (in
another process) are seen within that time; unknown users are cached too, briefly.
"""

from __future__ import annotations

from collections import OrderedDict

from tongdai.store.protocol import Store
from tongdai.store.records import DeviceRec


class DeviceDirectory:
    def __init__(
        self, *, store: Store, ttl: float = 30.0, negative_ttl: float = 1.0,
        max_entries: int = 200_000,
    ):
        self.store = store
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[DeviceRec | None, float]] = OrderedDict()

    def cached(self, sip_user: str, now: float) -> tuple[bool, DeviceRec | None]:
        """(hit, device) without I/O."""
        entry = self._cache.get(sip_user)
        if entry is None:
            return False, None
        # Unknown users are remembered briefly: a device just added must work soon.
        if now - entry[1] > (self.ttl if entry[0] is not None else self.negative_ttl):
            return False, None
        return True, entry[0]

    async def get(self, sip_user: str, now: float) -> DeviceRec | None:
        hit, dev = self.cached(sip_user, now)
        if hit:
            return dev
        dev = await self.store.get_device(sip_user)
        self._cache[sip_user] = (dev, now)
        self._cache.move_to_end(sip_user)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return dev

    def forget(self, sip_user: str) -> None:
        self._cache.pop(sip_user, None)
