"""The outer ASGI guard: size limits and the last-resort 500.

Bodies and query strings are bounded before any handler runs, so a client cannot
make us buffer megabytes. A request body is counted as it streams in (a missing or
lying Content-Length does not help). Any exception a handler lets escape becomes a
500 ``internal_error`` whose body says nothing about the cause; the traceback goes
to the log only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tongdai.api")


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, *, max_body: int = 16 * 1024, max_query: int = 4 * 1024,
                 larger: Mapping[str, int] | None = None):
        """``larger``: the few paths (exact) allowed a bigger body, with their cap."""
        self.app = app
        self.max_body = max_body
        self.max_query = max_query
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await _send_error(send, 414, "too_large",
                              f"The query string is longer than {self.max_query} bytes.")
            return
        limit = self.larger.get(scope.get("path", ""), self.max_body)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_error(send, 413, "too_large",
                              f"The request body is larger than {limit} bytes.")
            return

        started = False
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return msg

        async def tracked_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _send_error(send, 413, "too_large",
                                  f"The request body is larger than {limit} bytes.")
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _send_error(send, 500, "internal_error",
                                  "The server failed to handle the request; try again later.")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
