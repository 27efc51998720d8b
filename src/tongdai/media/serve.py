"""``GET``/``HEAD /recordings/{app_id}/{name}``: serving recordings by signed URL.

Checks, in order: the names have the only shapes recordings can have (so ``..``,
separators, encoded or not, and hidden partial files never reach the file system),
the signature (403 ``recording_link_invalid``), the expiry (403
``recording_link_expired``), then the file (404 ``recording_not_found``).
Byte ranges (RFC 9110 §14) are served by Starlette's ``FileResponse``: one range
answers 206 with ``Content-Range``, an unsatisfiable one 416.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tongdai.media.urls import RecordingSigner

__all__ = ["recording_routes"]

_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME = re.compile(r"(?:call_recording|voicemail)_[a-z0-9]{1,64}\.mp3")  # calls, voicemails
_EXPIRES = re.compile(r"[0-9]{1,12}")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def recording_routes(signer: RecordingSigner, recordings_dir: Path) -> list[BaseRoute]:
    """The route serving ``recordings_dir/<app_id>/<name>`` to holders of a signed URL."""

    async def recording(request: Request) -> Response:
        app_id = request.path_params["app_id"]
        name = request.path_params["name"]
        if not _APP_ID.fullmatch(app_id) or not _NAME.fullmatch(name):
            return _error(404, "recording_not_found", "There is no such recording.")
        expires_s = request.query_params.get("expires", "")
        sig = request.query_params.get("sig", "")
        if not _EXPIRES.fullmatch(expires_s) or not sig:
            return _error(403, "recording_link_invalid",
                          "This recording link is incomplete; ask play_recording for a new one.")
        expires = int(expires_s)
        now = time.time()
        if not signer.verify(app_id, name, expires, sig, float(expires)):
            return _error(403, "recording_link_invalid",
                          "This recording link is not valid; ask play_recording for a new one.")
        if now > expires:
            return _error(403, "recording_link_expired",
                          "This recording link has expired; ask play_recording for a new one.")
        path = recordings_dir / app_id / name
        try:
            st = await asyncio.to_thread(os.stat, path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            return _error(404, "recording_not_found", "There is no such recording.")
        return FileResponse(
            path, media_type="audio/mpeg", stat_result=st, filename=name,
            content_disposition_type="inline",
            headers={"Cache-Control": f"private, max-age={max(0, int(expires - now))}"},
        )

    return [Route("/recordings/{app_id}/{name}", recording, methods=["GET", "HEAD"])]
