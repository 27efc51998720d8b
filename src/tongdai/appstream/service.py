"""The app event stream assembled: its log and the hub that fans it out."""

from __future__ import annotations

from tongdai.appstream.bus import AppLogBus
from tongdai.appstream.hub import AppStreamHub
from tongdai.appstream.log import AppEventStore, AppLog, open_app_log
from tongdai.bus.protocol import EventBus
from tongdai.settings import Settings


class AppStream:
    """Publish through ``wrap(bus)``; serve websockets from ``hub``."""

    def __init__(self, *, log: AppLog, queue_limit: int) -> None:
        self.log = log
        self.hub = AppStreamHub(log=log, queue_limit=queue_limit)

    @classmethod
    def open(cls, *, settings: Settings, store: AppEventStore) -> AppStream:
        return cls(log=open_app_log(bus_url=settings.bus_url, store=store,
                                    retain=settings.app_events_retain),
                   queue_limit=settings.ws_queue_limit)

    def wrap(self, bus: EventBus) -> AppLogBus:
        return AppLogBus(bus, self.log)

    async def start(self) -> None:
        await self.log.start()

    async def stop(self) -> None:
        """After everything that publishes: writes what is queued, ends the streams."""
        await self.log.stop()
        self.hub.close()
