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

from tongdai.api.auth import Authenticator
from tongdai.api.context import ApiContext
from tongdai.api.errors import ErrorBody, install_error_handlers
from tongdai.api.guard import Guard
from tongdai.api.history import history_router
from tongdai.api.hub import EventHub
from tongdai.api.throttle import AuthThrottle
from tongdai.api.voice import voice_router
from tongdai.api.ws import VoiceSocket
from tongdai.api.wsdoc import websocket_doc
from tongdai.bus import EventBus
from tongdai.media.protocol import RecordingUrls
from tongdai.pbx.protocol import CallControl
from tongdai.settings import Settings
from tongdai.store import Store

WS_PATH = "/oapi/v1/voice/ws"
MAX_BODY = 16 * 1024
MAX_QUERY = 4 * 1024

_ERRORS_DOC = """
Every error is JSON `{{"code": "...", "message": "..."}}`: `code` is stable
(`invalid_parameter`, `device_offline`, `unauthorized`, `not_found`,
`method_not_allowed`, `too_large`, `rate_limited`, `upgrade_required`,
`internal_error`), `message` is one sentence naming the parameter at fault.
After {limit} failed authentications within {window:g} s an address gets 429 for
{block:g} s (whatever the credentials), with a Retry-After header.
"""


def create_api(
    *,
    settings: Settings,
    store: Store,
    bus: EventBus,
    calls: CallControl,
    recordings: RecordingUrls,
    extra_routes: Sequence[BaseRoute] = (),
    hub: EventHub | None = None,
    throttle: AuthThrottle | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the Open API ASGI app.

    The app's lifespan starts and stops the event hub; pass ``hub`` to own it
    yourself (then the lifespan leaves it alone). ``app.state.hub`` is the hub in use.
    """
    own_hub = hub is None
    the_hub = hub if hub is not None else EventHub(
        bus=bus, retain=settings.ws_retain_events, queue_limit=settings.ws_queue_limit)
    the_throttle = throttle if throttle is not None else AuthThrottle()
    ctx = ApiContext(
        settings=settings, store=store, calls=calls, recordings=recordings,
        auth=Authenticator(store=store, throttle=the_throttle, clock=clock),
        clock=clock, tz=zoneinfo.ZoneInfo(settings.timezone),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if own_hub:
            the_hub.start()
        try:
            yield
        finally:
            if own_hub:
                await the_hub.aclose()

    ws_doc = websocket_doc(
        ping_interval=settings.ws_ping_interval, retain=settings.ws_retain_events,
        queue_limit=settings.ws_queue_limit,
    )
    app = FastAPI(
        title="tongdai Open API",
        version="1",
        description=(
            "Click-to-call, call histories, recordings and live call signals for "
            "integrating applications (CRMs).\n"
            + _ERRORS_DOC.format(limit=the_throttle.limit, window=the_throttle.window,
                                 block=the_throttle.block) +
            "\n## Live call signals (websocket)\n" + ws_doc
        ),
        lifespan=lifespan,
        routes=list(extra_routes),
        # A 307 to the slash-less path would make clients re-send POST bodies; 404 instead.
        redirect_slashes=False,
    )
    app.state.hub = the_hub
    install_error_handlers(app)
    app.include_router(voice_router(ctx))
    app.include_router(history_router(ctx))

    voice_socket = VoiceSocket(
        store=store, hub=the_hub, throttle=the_throttle, clock=clock,
        ping_interval=settings.ws_ping_interval,
    )

    @app.websocket(WS_PATH)
    async def voice_ws(websocket: WebSocket) -> None:
        await voice_socket(websocket)

    @app.get(
        WS_PATH, status_code=426, tags=["Open API"],
        summary="Live call signals (websocket; see the protocol below)",
        description=ws_doc, responses={426: {"model": ErrorBody}},
    )
    async def ws_over_http() -> Any:
        return JSONResponse(
            {"code": "upgrade_required",
             "message": f"{WS_PATH} is a websocket; connect with ws:// and ?token=<value>."},
            status_code=426, headers={"Upgrade": "websocket"},
        )

    app.add_middleware(Guard, max_body=MAX_BODY, max_query=MAX_QUERY)
    return app
