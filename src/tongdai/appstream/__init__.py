"""The app-wide event stream: every event of a tenant, numbered per app, durable.

``log.py`` numbers each app's events 1, 2, 3, ... and keeps the latest of them: in the
database on the embedded default (``store.py``), in Redis Streams when the bus is
Redis (``redis_log.py``), so the numbers survive a restart and agree between
processes. ``bus.py`` feeds the log from every publish; ``hub.py`` fans the numbered
events out to websocket subscribers, each with its bindings and device filter.
"""

from tongdai.appstream.bus import AppLogBus
from tongdai.appstream.hub import AppStreamHub
from tongdai.appstream.log import AppLog, SqlAppLog, open_app_log
from tongdai.appstream.record import AppRecord

__all__ = ["AppLog", "AppLogBus", "AppRecord", "AppStreamHub", "SqlAppLog", "open_app_log"]
