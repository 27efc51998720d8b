"""The admin API and the console as routes of tongdai's HTTP server."""

from __future__ import annotations

import time

from starlette.routing import BaseRoute, Mount

from tongdai.admin.api import MOUNT, create_admin_api
from tongdai.admin.auth import AdminAuth
from tongdai.admin.service import LiveCallSource, QueueProbe
from tongdai.bus import EventBus
from tongdai.console.app import MOUNT as CONSOLE
from tongdai.console.app import Console
from tongdai.console.session import Sessions
from tongdai.keys import load_or_create_key
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store.protocol import Store
from tongdai.store.sql import SqlStore
from tongdai.throttle import AuthThrottle


def admin_routes(*, store: Store, settings: Settings, bus: EventBus, throttle: AuthThrottle,
                 live_calls: LiveCallSource | None, recordings: RecordingSigner,
                 queues: QueueProbe | None = None) -> list[BaseRoute]:
    """``/admin/v1/...`` and ``/console/...``; sign-in failures count in ``throttle``
    (the Open API's: one budget of failures per client address)."""
    if not isinstance(store, SqlStore):  # administration needs the SQL store's tables
        return []
    auth = AdminAuth(store=store, throttle=throttle, clock=time.time)
    api = create_admin_api(store=store, settings=settings, auth=auth, live_calls=live_calls,
                           queues=queues)
    console = Console(store=store, settings=settings, bus=bus, auth=auth,
                      sessions=Sessions(load_or_create_key(settings.data_dir, "console.key")),
                      recordings=recordings, live_calls=live_calls, queues=queues)
    return [Mount(MOUNT, app=api), Mount(CONSOLE, app=console.app())]
