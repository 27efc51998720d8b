"""The query-signed endpoints: ``histories`` and ``play_recording``.

The caller proves it holds the app secret with ``hash`` = sha256 of the parameters
as sent, concatenated in the documented order, followed by the secret.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tongdai.api.context import ApiContext, client_of, error_docs, single_params
from tongdai.api.dates import ACCEPTED_FORMS, WindowError, parse_window
from tongdai.api.docs import required
from tongdai.api.errors import bad_param, not_found, unauthorized
from tongdai.api.history_query import (
    DEFAULT_LIMIT,
    EXTRA_PARAMS,
    decode_cursor,
    encode_cursor,
    history_hash_inputs,
    parse_filters,
    present,
)
from tongdai.api.schemas import Histories, RecordingLink
from tongdai.store import CdrPosition

MAX_LIMIT = 100
MAX_PAGE = 1_000_000
_MEDIA = re.compile(r"(?:call_recording|voicemail)_[a-z0-9]{1,100}\.mp3")  # calls, voicemails
HISTORY_PARAMS = ("appId", "created_from", "created_to", "limit", "page", "hash",
                  *EXTRA_PARAMS)
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
            "default (20, 1). The hash is accepted in any letter case, and also in the "
            "order created_from + created_to + limit + page + appId + appSecret.\n\n"
            "Optional filters (tongdai's, beyond the seed): `phone`, `status_detail`, "
            "`direction`, `device`, `did`, `external_id`; and `after` for cursor "
            "paging. Each one sent joins the hash after page (after appId in the "
            "second order), in the order "
            f"{' + '.join(EXTRA_PARAMS)}, before appSecret: e.g. sha256(appId + "
            "created_from + created_to + limit + page + phone + direction + appSecret). "
            "A request with only the seed's parameters is signed and answered exactly "
            "as without them. With `after` (empty to begin) the response adds `next`, "
            "the `after` of the following page (null at the end): a walk that neither "
            "repeats nor skips a call however deep it goes, even while calls arrive.\n\n"
            "Each record has the seed's ten fields, in the seed's order, then `call_id` "
            "and, for a click-to-call given them, `external_id` and `metadata`."
        ),
        responses=error_docs("invalid_parameter", "unauthorized", "too_large", "rate_limited",
                             "app_rate_limited"),
        openapi_extra=required("appId", "created_from", "created_to", "hash"),
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
            None, description="sha256(appId+created_from+created_to+limit+page+"
                              "[filters, after]+appSecret)."),
        phone: str | None = Query(
            None, description="Calls from or to this number, in any form it is written "
                              "(01693608879 also finds 0393608879 and +84393608879).",
            examples=["0393608879"]),
        status_detail: str | None = Query(
            None, description="SUCCESS, BUSY, CANCELLED, IVR or ERROR.", examples=["BUSY"]),
        direction: str | None = Query(
            None, description="from_ab (outgoing) or to_ab (incoming).", examples=["to_ab"]),
        device: str | None = Query(
            None, description="Calls a device (sipUser) of the app took part in.",
            examples=["thutran"]),
        did: str | None = Query(
            None, description="Calls to this DID.", examples=["02873019555"]),
        external_id: str | None = Query(
            None, description="The click-to-call given this external_id.",
            examples=["crm-ticket-1042"]),
        after: str | None = Query(
            None, description="Cursor: `next` of the previous response; empty to begin."),
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
        filters = parse_filters(p)
        walking = p["after"] is not None
        position = decode_cursor(p["after"]) if p["after"] else None
        if walking and pg != 1:
            raise bad_param("page cannot be combined with after; follow next instead.")
        extras = present(p, EXTRA_PARAMS)
        app = await ctx.auth.app_by_hash(
            client_of(request), app_id, given,
            lambda s: history_hash_inputs(app_id, c_from, c_to, p["limit"], p["page"], s,
                                          extras),
        )
        q = filters.query(app.app_id, window.start, window.end)
        if q.filtered or walking:
            total, rows = await ctx.store.search_cdrs(
                q, limit=lim, offset=(pg - 1) * lim, after=position)
        else:  # the seed's request, answered as it always was
            total, rows = await ctx.store.list_cdrs(
                app.app_id, window.start, window.end, limit=lim, offset=(pg - 1) * lim)
        # Returned as is, not re-validated through the model: the records are exactly
        # Cdr.to_api() (absent keys stay absent), and 100 records serialise faster.
        body: dict[str, Any] = {
            "data": [c.to_api() for c in rows], "total": total, "page": pg, "limit": lim}
        if walking:
            body["next"] = (encode_cursor(CdrPosition.of(rows[-1]))
                            if len(rows) == lim else None)
        return JSONResponse(body)

    @router.get(
        "/oapi/v1/call/play_recording",
        response_model=RecordingLink,
        summary="Get a signed, expiring URL of a call recording",
        description=(
            "`media` is the `recording` value of a call in histories. `hash` = "
            "sha256(appId + media + appSecret). The URL expires after "
            f"{ctx.settings.recording_url_ttl} s (TONGDAI_RECORDING_URL_TTL)."
        ),
        responses=error_docs("invalid_parameter", "unauthorized", "not_found", "too_large",
                             "rate_limited", "app_rate_limited"),
        openapi_extra=required("appId", "media", "hash"),
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
