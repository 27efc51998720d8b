"""The HTTP access log: one ``http.request`` line per request or websocket session.

Fields: ``method`` (``WS`` for a websocket), ``path``, ``status``, ``ms`` and
``client``. Never the query string: it carries credentials (the histories ``hash``,
the websocket ``token``, recording link signatures). Never a header either:
``x-auth-app-hash`` is one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tongdai import logs
from tongdai.asgi import App, Receive, Scope, Send, call_noting_status

log = logging.getLogger("tongdai.http")

MAX_PATH = 200  # a path is attacker-chosen; keep a line a line


class AccessLog:
    """ASGI middleware logging each HTTP request and websocket session when it ends."""

    def __init__(self, app: App, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = self.clock()

        def ended(status: int) -> None:
            client = scope.get("client")
            logs.event(
                log, "http.request",
                method="WS" if kind == "websocket" else str(scope.get("method", "")),
                path=str(scope.get("path", ""))[:MAX_PATH],
                status=status,
                ms=round((self.clock() - started) * 1000, 1),
                client=f"{client[0]}:{client[1]}" if client else "-",
            )

        await call_noting_status(self.app, scope, receive, send, ended)
