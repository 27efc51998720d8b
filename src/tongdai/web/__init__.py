"""The softphone page: a browser as a device, over SIP/WebSocket and WebRTC.

``/phone`` serves a standalone page (``static/phone.html``, ``phone.js``) that signs
in with a device's SIP credentials and registers over the ``ws``/``wss`` listener with
JsSIP (vendored in ``static/jssip.min.js``, MIT, see ``static/JSSIP-LICENSE.txt``).
``/phone/config.json`` tells the page where that listener is and the SIP domain.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["STATIC", "phone_routes"]

STATIC = Path(__file__).parent / "static"
_FILES = {
    "phone.js": "text/javascript",
    "jssip.min.js": "text/javascript",
    "phone.css": "text/css",
    "JSSIP-LICENSE.txt": "text/plain",
}


def phone_routes(*, domain: str, ws_port: int | None, wss_port: int | None) -> list[BaseRoute]:
    """``/phone`` and its files; the ports are the bound listeners' (None: off)."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "phone.html", media_type="text/html",
                            headers={"cache-control": "no-cache"})

    async def config(request: Request) -> Response:
        return JSONResponse({"domain": domain, "ws_port": ws_port, "wss_port": wss_port})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        kind = _FILES.get(name)
        if kind is None:
            return JSONResponse({"code": "not_found", "message": "There is no such file."},
                                status_code=404)
        return FileResponse(STATIC / name, media_type=kind,
                            headers={"cache-control": "no-cache"})

    return [
        Route("/phone", page, methods=["GET"]),
        Route("/phone/config.json", config, methods=["GET"]),
        Route("/phone/{name}", asset, methods=["GET"]),
    ]
