"""Choosing the bus backend from a URL (the ``TONGDAI_BUS_URL`` setting)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tongdai.bus.memory import InProcessBus
from tongdai.bus.protocol import EventBus
from tongdai.bus.redis import RedisBus

DEFAULT_PREFIX = "tongdai"


def open_bus(url: str) -> EventBus:
    """The bus named by ``url``, not yet started (``await bus.start()``).

    ``""`` or ``memory://``: the embedded in-process bus. ``redis://`` or
    ``rediss://`` (TLS) ``[user:password@]host[:port][/db][?prefix=name]``: a bus
    shared over Redis on the channel ``<prefix>:events`` (prefix ``tongdai`` unless
    given), so several tongdai processes on one Redis see each other's events.
    """
    if url in ("", "memory://"):
        return InProcessBus()
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [v for k, v in query if k == "prefix"]
        # redis-py would pass an unknown query argument on to the connection and fail.
        rest = urlencode([(k, v) for k, v in query if k != "prefix"])
        return RedisBus(urlunsplit(parts._replace(query=rest)),
                        prefix=prefixes[-1] if prefixes else DEFAULT_PREFIX)
    # Only the scheme is echoed: the rest of the URL may hold a password.
    if not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError("The event bus URL has no scheme: use memory:// or redis://host:port/db.")
    raise ValueError(
        f"Unsupported event bus URL scheme {scheme!r}: use memory:// or redis://host:port/db."
    )
