"""The query-signed endpoints: ``histories`` and ``play_recording``.

The caller proves it holds the app secret with ``hash`` = sha256 of the parameters
as sent, concatenated in the documented order, followed by the secret.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tongdai.api.context import ApiContext, client_of, error_docs, single_params
from tongdai.api.dates import ACCEPTED_FORMS, WindowError, parse_window
from tongdai.api.errors import bad_param, not_found, unauthorized
from tongdai.api.schemas import Histories, RecordingLink

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_PAGE = 1_000_000
_MEDIA = re.compile(r"call_recording_[a-z0-9]{1,100}\.mp3")
# "2026-11-01T08:00:00+07:00" sent without URL-encoding arrives with a space for "+".
_SPACED_OFFSET = re.compile(
    r"(.*\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})", re.ASCII
)

HISTORY_PARAMS = ("appId", "created_from", "created_to", "limit", "page", "hash")
RECORDING_PARAMS = ("appId", "media", "hash")


def _number(name: str, raw: str | None, default: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise bad_param(f"{name} must be a whole number between 1 and {hi}.")
    n = int(raw)
    if not 1 <= n <= hi:
        raise bad_param(f"{name} must be a whole number between 1 and {hi}.")
    return n


def _as_sent(value: str) -> list[str]:
    """The strings the client may have hashed for a date value."""
    m = _SPACED_OFFSET.fullmatch(value)
    return [value, f"{m[1]}+{m[2]}"] if m else [value]


def history_hash_inputs(
    app_id: str, created_from: str, created_to: str, limit: str | None, page: str | None,
    secret: str,
) -> Iterator[str]:
    """Every plaintext whose sha256 is an acceptable ``hash`` for these parameters.

    Omitted (or empty) ``limit`` / ``page`` may have been hashed as "" or as the
    default ("20", "1"); integrators do both.
    """
    limits = [limit] if limit else ["", str(DEFAULT_LIMIT)]
    pages = [page] if page else ["", "1"]
    for f, t, lim, pg in itertools.product(
        _as_sent(created_from), _as_sent(created_to), limits, pages
    ):
        yield app_id + f + t + lim + pg + secret


def history_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["Open API"])

    @router.get(
        "/oapi/v1/call/histories",
        response_model=Histories,
        summary="List the app's calls in a window of at most 31 days",
        description=(
            "Calls that started within [created_from, created_to], newest first (ties in "
            "a stable order, so pages neither repeat nor skip a call while no new calls "
            f"arrive). Dates: {ACCEPTED_FORMS}. Values without an offset are local time in "
            f"{ctx.settings.timezone} (TONGDAI_TIMEZONE); a bare date as created_to means "
            "through the end of that day, a time without a fraction through the end of "
            "that second. The window is at most 31 days (31 x 24 h, measured to the end "
            "of a bare-date created_to). `hash` = sha256(appId + "
            "created_from + created_to + limit + page + appSecret) over the values exactly "
            "as sent; when limit or page is omitted, hash it as an empty string or as its "
            "default (20, 1). The hash is accepted in any letter case."
        ),
        responses=error_docs(400, 401, 414, 429),
    )
    async def histories(
        request: Request,
        appId: str | None = Query(None, description="The app id."),
        created_from: str | None = Query(
            None, description="Start of the window.", examples=["2026-11-01"]),
        created_to: str | None = Query(
            None, description="End of the window (inclusive).", examples=["2026-11-30"]),
        limit: str | None = Query(
            None, description="Calls per page, 1 to 100; default 20.", examples=["20"]),
        page: str | None = Query(None, description="Page, from 1; default 1.", examples=["1"]),
        hash: str | None = Query(
            None, description="sha256(appId+created_from+created_to+limit+page+appSecret)."),
    ) -> Any:
        ctx.auth.check_not_blocked(client_of(request))
        p = single_params(request, HISTORY_PARAMS)
        app_id, given = _signed(p)
        c_from, c_to = p["created_from"], p["created_to"]
        if not c_from:
            raise bad_param(f"created_from is required: {ACCEPTED_FORMS}.")
        if not c_to:
            raise bad_param(f"created_to is required: {ACCEPTED_FORMS}.")
        lim = _number("limit", p["limit"], DEFAULT_LIMIT, MAX_LIMIT)
        pg = _number("page", p["page"], 1, MAX_PAGE)
        try:
            window = parse_window(c_from, c_to, ctx.tz)
        except WindowError as exc:
            raise bad_param(str(exc)) from None
        app = await ctx.auth.app_by_hash(
            client_of(request), app_id, given,
            lambda s: history_hash_inputs(app_id, c_from, c_to, p["limit"], p["page"], s),
        )
        total, rows = await ctx.store.list_cdrs(
            app.app_id, window.start, window.end, limit=lim, offset=(pg - 1) * lim
        )
        # Returned as is, not re-validated through the model: the records are exactly
        # Cdr.to_api() (absent keys stay absent), and 100 records serialise faster.
        return JSONResponse(
            {"data": [c.to_api() for c in rows], "total": total, "page": pg, "limit": lim})

    @router.get(
        "/oapi/v1/call/play_recording",
        response_model=RecordingLink,
        summary="Get a signed, expiring URL of a call recording",
        description=(
            "`media` is the `recording` value of a call in histories. `hash` = "
            "sha256(appId + media + appSecret). The URL expires after "
            f"{ctx.settings.recording_url_ttl} s (TONGDAI_RECORDING_URL_TTL)."
        ),
        responses=error_docs(400, 401, 404, 414, 429),
    )
    async def play_recording(
        request: Request,
        appId: str | None = Query(None, description="The app id."),
        media: str | None = Query(
            None, description="The recording file name.",
            examples=["call_recording_dl5m5j5hfh4n8njj1oor.mp3"]),
        hash: str | None = Query(None, description="sha256(appId + media + appSecret)."),
    ) -> dict[str, Any]:
        ctx.auth.check_not_blocked(client_of(request))
        p = single_params(request, RECORDING_PARAMS)
        app_id, given = _signed(p)
        name = p["media"]
        if not name:
            raise bad_param("media is required: the recording file name from histories.")
        if not _MEDIA.fullmatch(name):
            raise bad_param("media must be a recording file name like "
                            "call_recording_dl5m5j5hfh4n8njj1oor.mp3.")
        app = await ctx.auth.app_by_hash(
            client_of(request), app_id, given, lambda s: (app_id + name + s,))
        if await ctx.store.cdr_by_recording(app.app_id, name) is None:
            raise not_found(f"This app has no recording named {name}.")
        url, expire = ctx.recordings.signed_url(app.app_id, name, ctx.clock())
        return {"url": url, "expire": expire}

    return router


def _signed(p: dict[str, str | None]) -> tuple[str, str]:
    app_id, given = p["appId"], p["hash"]
    if not app_id:
        raise unauthorized("appId is required.")
    if not given:
        raise unauthorized("hash is required: see the endpoint's documented formula.")
    return app_id, given
