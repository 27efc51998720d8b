"""ASGI types, and the status an ASGI exchange answered with, for the layers that
count or log requests and websocket sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def call_noting_status(app: App, scope: Scope, receive: Receive, send: Send,
                             ended: Callable[[int], None]) -> None:
    """Run ``app`` and hand ``ended`` the status it answered once it returns or raises.

    The status is the HTTP one; 101 for an accepted websocket; 403 for a websocket
    closed before its handshake (the server answers 403); 500 for an app that raised
    before answering; 0 when the client went away before any answer.
    """
    status = 0

    async def send_and_note(message: Message) -> None:
        nonlocal status
        match message["type"]:
            case "http.response.start" | "websocket.http.response.start":
                status = int(message["status"])
            case "websocket.accept":
                status = 101
            case "websocket.close" if status == 0:
                status = 403
        await send(message)

    try:
        await app(scope, receive, send_and_note)
    except Exception:
        status = status or 500
        raise
    finally:
        ended(status)
