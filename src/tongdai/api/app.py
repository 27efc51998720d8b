"""The Open API application: the four /oapi/v1 endpoints and the call-signal websocket."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tongdai.api.auth import Authenticator
from tongdai.api.calls import calls_router
from tongdai.api.context import ApiContext, OpenApiStore
from tongdai.api.devices import devices_router
from tongdai.api.docs import DocumentedApi, install_docs
from tongdai.api.errors import CODES, ErrorBody, install_error_handlers
from tongdai.api.export import export_router
from tongdai.api.guard import Guard
from tongdai.api.history import history_router
from tongdai.api.hub import EventHub
from tongdai.api.presence import LiveCalls
from tongdai.api.ratelimit import AppRateLimit
from tongdai.api.voice import voice_router
from tongdai.api.ws import VoiceSocket
from tongdai.api.wsdoc import websocket_doc
from tongdai.bus import EventBus
from tongdai.console.upload import MAX_UPLOAD, UPLOAD_PATH
from tongdai.media.protocol import RecordingUrls
from tongdai.pbx.protocol import CallControl
from tongdai.settings import Settings
from tongdai.store.protocol import Configuration
from tongdai.throttle import AuthThrottle

WS_PATH = "/oapi/v1/voice/ws"
MAX_BODY = 16 * 1024
MAX_QUERY = 4 * 1024

_ERRORS_DOC = """
Every error is JSON `{{"code": "...", "message": "..."}}`: `code` is stable, `message`
is one sentence naming the parameter at fault.

| status | code | when |
|---|---|---|
{codes}

After {limit} failed authentications within {window:g} s an address gets 429 for
{block:g} s (whatever the credentials), with a Retry-After header.
"""


def _codes_table() -> str:
    return "\n".join(f"| {' / '.join(map(str, statuses))} | `{code}` | {when} |"
                      for code, (statuses, when) in CODES.items())


def create_api(
    *,
    settings: Settings,
    store: OpenApiStore,
    bus: EventBus,
    calls: CallControl,
    recordings: RecordingUrls,
    extra_routes: Sequence[BaseRoute] = (),
    hub: EventHub | None = None,
    throttle: AuthThrottle | None = None,
    clock: Callable[[], float] = time.time,
    config: Configuration | None = None,
) -> FastAPI:
    """Build the Open API ASGI app.

    The app's lifespan starts and stops the event hub; pass ``hub`` to own it
    yourself (then the lifespan leaves it alone). ``app.state.hub`` is the hub in use.
    """
    own_hub = hub is None
    the_hub = hub if hub is not None else EventHub(
        bus=bus, retain=settings.ws_retain_events, queue_limit=settings.ws_queue_limit)
    the_throttle = throttle if throttle is not None else AuthThrottle(
        scope="http", address_limit=settings.api_auth_fail_limit,
        window=settings.api_auth_fail_window, block=settings.api_auth_block_seconds,
    )
    # Configuration reads go to ``config`` (a cache, in the server) when given.
    cfg = config if config is not None else store
    ctx = ApiContext(
        settings=settings, store=store, config=cfg, calls=calls, recordings=recordings,
        auth=Authenticator(store=cfg, throttle=the_throttle, clock=clock,
                           limit=AppRateLimit(rate=settings.api_app_rate,
                                              burst=settings.api_app_burst)),
        clock=clock, tz=zoneinfo.ZoneInfo(settings.timezone),
    )

    # In-call state for presence; a call never heard to end is forgotten after the
    # longest a call may last.
    live = LiveCalls(bus=bus, stale_after=settings.ring_timeout + settings.max_call_duration)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if own_hub:
            the_hub.start()
        live.start()
        try:
            yield
        finally:
            await live.aclose()
            if own_hub:
                await the_hub.aclose()

    ws_doc = websocket_doc(
        ping_interval=settings.ws_ping_interval, retain=settings.ws_retain_events,
        queue_limit=settings.ws_queue_limit,
    )
    app = DocumentedApi(
        title="tongdai Open API",
        version="1",
        description=(
            "Click-to-call, call histories, recordings and live call signals for "
            "integrating applications (CRMs).\n"
            + _ERRORS_DOC.format(limit=the_throttle.address_limit, window=the_throttle.window,
                                 block=the_throttle.block, codes=_codes_table()) +
            "\n## Live call signals (websocket)\n" + ws_doc
        ),
        lifespan=lifespan,
        routes=list(extra_routes),
        # A 307 to the slash-less path would make clients re-send POST bodies; 404 instead.
        redirect_slashes=False,
        docs_url=None, redoc_url=None,  # served from local assets by install_docs
    )
    app.state.hub = the_hub
    app.state.live_calls = live
    install_error_handlers(app)
    install_docs(app)
    app.include_router(voice_router(ctx))
    app.include_router(history_router(ctx))
    app.include_router(export_router(ctx))
    app.include_router(devices_router(ctx, live=live))
    app.include_router(calls_router(ctx))

    voice_socket = VoiceSocket(
        store=store, config=cfg, hub=the_hub, throttle=the_throttle, clock=clock,
        ping_interval=settings.ws_ping_interval,
    )

    @app.websocket(WS_PATH)
    async def voice_ws(websocket: WebSocket) -> None:
        await voice_socket(websocket)

    @app.get(
        WS_PATH, status_code=426, tags=["Open API"],
        summary="Live call signals (websocket; see the protocol below)",
        description=ws_doc,
        response_description="`upgrade_required`: a plain HTTP request; connect with a "
                             "websocket client (ws://...?token=<value>).",
        responses={
            101: {"description": "Switching Protocols: a websocket handshake with a "
                                 "token is upgraded, then the protocol below runs."},
            426: {"model": ErrorBody},
        },
    )
    async def ws_over_http() -> Any:
        return JSONResponse(
            {"code": "upgrade_required",
             "message": f"{WS_PATH} is a websocket; connect with ws:// and ?token=<value>."},
            status_code=426, headers={"Upgrade": "websocket"},
        )

    app.add_middleware(Guard, max_body=MAX_BODY, max_query=MAX_QUERY,
                       larger={UPLOAD_PATH: MAX_UPLOAD})
    if settings.trusted_proxy_list:
        # The one rule for who the client is (the throttle and the access log use it):
        # X-Forwarded-For counts only when the TCP peer is a trusted proxy, and then
        # the client is its right-most address that is not one. Otherwise the header
        # is ignored, so nobody picks his own address to walk past the throttle.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app
