"""The app-wide event stream: ``/oapi/v1/events/ws``.

Authenticated with the app's own credentials (headers ``x-auth-app-id`` and
``x-auth-app-hash = sha256(appId + appSecret)``, or the query parameters ``appId``
and ``hash`` for clients that cannot set headers), it streams every event of that
app, numbered per app (``seq``), filtered by ``events=`` bindings and ``device=``.
Close codes are the device websocket's (``api/ws.CLOSE_CODES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable

from fastapi.routing import APIRoute
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from tongdai.api.auth import MAX_ID_LEN, hash_matches, sha256_hex
from tongdai.api.errors import ErrorBody
from tongdai.api.ws import (
    _GONE,
    BAD_REQUEST,
    GOING_AWAY,
    INVALID_TOKEN,
    MISSING_TOKEN,
    RATE_LIMITED,
    TOO_SLOW,
    _close,
    _pump,
)
from tongdai.api.wsdoc import app_stream_doc
from tongdai.appstream.hub import AppStreamHub, StreamMailbox
from tongdai.store.protocol import Configuration
from tongdai.throttle import AuthThrottle
from tongdai.webhooks.bindings import BadBindings, parse_bindings

log = logging.getLogger("tongdai.api.events_ws")

EVENTS_WS_PATH = "/oapi/v1/events/ws"
UNAVAILABLE = 1011
_SEQ = re.compile(r"\d{1,15}", re.ASCII)
_DEVICE = re.compile(r"[A-Za-z0-9_.\-+@]{1,128}")
MAX_DEVICES = 100
# With batch=1, one websocket message carries up to this many events, one per line.
BATCH = 256
_DUMMY_SECRET = "0" * 64


class AppEventSocket:
    def __init__(self, *, config: Configuration, hub: AppStreamHub, throttle: AuthThrottle,
                 clock: Callable[[], float], ping_interval: float) -> None:
        self.config = config
        self.hub = hub
        self.throttle = throttle
        self.clock = clock
        self.ping_interval = ping_interval

    async def __call__(self, websocket: WebSocket) -> None:
        await websocket.accept()
        params, headers = websocket.query_params, websocket.headers
        app_id = headers.get("x-auth-app-id") or params.get("appId", "")
        given = headers.get("x-auth-app-hash") or params.get("hash", "")
        if not app_id or not given:
            await _close(websocket, MISSING_TOKEN)
            return
        since_raw = params.get("since")
        devices_raw = [d.strip() for v in params.getlist("device") for d in v.split(",")
                       if d.strip()]
        try:
            bindings = parse_bindings(",".join(params.getlist("events")))
        except BadBindings:
            await _close(websocket, BAD_REQUEST)
            return
        batch = params.get("batch", "0")
        if ((since_raw is not None and not _SEQ.fullmatch(since_raw))
                or batch not in ("0", "1")
                or len(devices_raw) > MAX_DEVICES
                or not all(_DEVICE.fullmatch(d) for d in devices_raw)):
            await _close(websocket, BAD_REQUEST)
            return
        client = websocket.client.host if websocket.client else "unknown"
        if self.throttle.retry_after(client, None, self.clock()) > 0:
            await _close(websocket, RATE_LIMITED)
            return
        secret = await self._secret(app_id)
        if not hash_matches(given, (sha256_hex(app_id + (secret or _DUMMY_SECRET)),)) \
                or secret is None:
            self.throttle.failure(client, None, self.clock())
            await _close(websocket, INVALID_TOKEN)
            return
        devices = frozenset(devices_raw) if devices_raw else None
        try:
            att = await self.hub.attach(
                app_id=app_id, bindings=bindings, devices=devices,
                since=int(since_raw) if since_raw is not None else None,
                per_message=BATCH if batch == "1" else 1)
        except Exception:
            log.exception("could not read the app event log")
            await _close_unavailable(websocket)
            return
        first = [json.dumps({
            "type": "hello", "app_id": app_id, "seq": att.last_seq, "events": list(bindings),
            "devices": sorted(devices) if devices else None,
            "ping_interval": self.ping_interval,
        })]
        if att.gap is not None:
            first.append(json.dumps({"type": "gap", "from": att.gap[0], "to": att.gap[1]}))
        first.extend(_lines(list(att.replay)) if batch == "1" else att.replay)
        try:
            code = await self._serve(websocket, att.subscriber.mailbox, first, app_id, secret)
            if code is not None:
                await _close(websocket, code)
        except _GONE:
            pass
        finally:
            self.hub.detach(att.subscriber)

    async def _secret(self, app_id: str) -> str | None:
        app = await self.config.get_app(app_id) if len(app_id) <= MAX_ID_LEN else None
        return app.app_secret.reveal() if app is not None else None

    async def _serve(self, websocket: WebSocket, mailbox: StreamMailbox, first: list[str],
                     app_id: str, secret: str) -> int | None:
        return await _pump(
            websocket, mailbox, self._write(websocket, mailbox, first, app_id, secret),
            log, "app event websocket task failed")

    async def _write(self, websocket: WebSocket, mailbox: StreamMailbox, first: list[str],
                     app_id: str, secret: str) -> int:
        for text in first:
            await websocket.send_text(text)
        next_ping = self.clock() + self.ping_interval
        while True:
            now = self.clock()
            if now >= next_ping:
                # A rotated secret or a removed app ends the stream it opened.
                try:
                    if await self._secret(app_id) != secret:
                        return INVALID_TOKEN
                except Exception:
                    log.warning("could not re-check an app event stream", exc_info=True)
                await websocket.send_text(json.dumps({"type": "ping", "ts": now}))
                next_ping = now + self.ping_interval
                continue
            # With batch=1, whatever queued up while the last message was being sent goes
            # in one (the mailbox joins it): per-message costs, not bytes, bound a
            # websocket's throughput.
            msg = mailbox.next_ready()
            if msg is None:
                try:
                    async with asyncio.timeout(next_ping - now):
                        msg = await mailbox.get()
                except TimeoutError:
                    continue
                if msg is None:
                    return TOO_SLOW if mailbox.overflowed else GOING_AWAY
            await websocket.send_text(msg)


def _lines(messages: list[str]) -> list[str]:
    """``messages`` as batch=1 sends them: up to ``BATCH`` per message, one per line."""
    return ["\n".join(messages[i:i + BATCH]) for i in range(0, len(messages), BATCH)]


async def _close_unavailable(websocket: WebSocket) -> None:
    with contextlib.suppress(*_GONE):
        await websocket.close(code=UNAVAILABLE, reason="the event log is unavailable; retry")


def app_event_routes(*, config: Configuration, hub: AppStreamHub, throttle: AuthThrottle,
                     clock: Callable[[], float], ping_interval: float) -> list[BaseRoute]:
    """The websocket route, and a 426 for plain HTTP on its path."""
    sock = AppEventSocket(config=config, hub=hub, throttle=throttle, clock=clock,
                          ping_interval=ping_interval)

    async def over_http() -> JSONResponse:
        return JSONResponse(
            {"code": "upgrade_required",
             "message": f"{EVENTS_WS_PATH} is a websocket; connect with ws:// and the app's "
                        "x-auth-app-id and x-auth-app-hash."},
            status_code=426, headers={"Upgrade": "websocket"})

    async def endpoint(websocket: WebSocket) -> None:  # a function: starlette's signature
        await sock(websocket)

    # The plain-HTTP answer is an APIRoute so that /docs shows the protocol (OpenAPI
    # cannot describe a websocket itself).
    documented = APIRoute(
        EVENTS_WS_PATH, over_http, methods=["GET"], status_code=426, tags=["Open API"],
        summary="App-wide event stream (websocket; see the protocol below)",
        description=app_stream_doc(ping_interval=ping_interval, queue_limit=hub.queue_limit),
        response_description="`upgrade_required`: a plain HTTP request; connect with a "
                             "websocket client and the app's credentials.",
        responses={101: {"description": "Switching Protocols: the websocket handshake; "
                                        "then the protocol below runs."},
                   426: {"model": ErrorBody}},
    )
    return [WebSocketRoute(EVENTS_WS_PATH, endpoint), documented]
