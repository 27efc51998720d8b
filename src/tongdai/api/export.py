"""``GET /oapi/v1/call/histories/export``: a window of calls as CSV or NDJSON, streamed.

Signed and filtered like histories (``history_query.py``), without paging: the body
is written as the store reads it, ``BATCH`` records at a time (each batch a short
read continued from the previous one's last record), so memory does not grow with
the window and no database transaction stays open while a slow client reads.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, tab or CR) get a leading apostrophe (OWASP "CSV injection"), except
plain numbers such as ``+84393608879``, which stay as they are.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from tongdai.api.context import ApiContext, client_of, error_docs, single_params
from tongdai.api.dates import ACCEPTED_FORMS, WindowError, parse_window
from tongdai.api.docs import required
from tongdai.api.errors import bad_param, unauthorized
from tongdai.api.history_query import (
    FILTER_PARAMS,
    history_hash_inputs,
    parse_filters,
    present,
)
from tongdai.store import Cdr, CdrQuery

EXPORT_PATH = "/oapi/v1/call/histories/export"
EXPORT_PARAMS = ("appId", "created_from", "created_to", *FILTER_PARAMS, "format", "hash")
FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
BATCH = 500
CSV_COLUMNS = (
    "caller_number", "caller_type", "caller_username", "callee_number", "callee_type",
    "callee_username", "class", "did_number", "direction", "status_detail",
    "duration_seconds", "unix_timestamp", "billing_seconds", "recording", "call_id",
    "external_id", "metadata",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    s = str(v)
    if s.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(s):
        return "'" + s
    return s


def csv_row(c: Cdr) -> list[str]:
    r = c.to_api()
    er, ee = r["caller"], r["callee"]
    return [_cell(x) for x in (
        er.get("number"), er.get("type"), er.get("username"), ee.get("number"),
        ee.get("type"), ee.get("username"), r["class"], r["did_number"], r["direction"],
        r["status_detail"], r["duration_seconds"], r["unix_timestamp"],
        r["billing_seconds"], r["recording"], c.call_id, c.external_id,
        None if c.metadata is None else json.dumps(
            c.metadata, ensure_ascii=False, separators=(",", ":")),
    )]


def _csv_chunk(rows: Sequence[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)  # RFC 4180 line ends
    return buf.getvalue().encode()


async def _body(ctx: ApiContext, q: CdrQuery, fmt: str) -> AsyncIterator[bytes]:
    if fmt == "csv":
        yield _csv_chunk([list(CSV_COLUMNS)])
    async for batch in ctx.store.iter_cdrs(q, batch=BATCH):
        if fmt == "csv":
            yield _csv_chunk([csv_row(c) for c in batch])
        else:
            yield "".join(json.dumps(c.to_api(), ensure_ascii=False, separators=(",", ":"))
                          + "\n" for c in batch).encode()


def export_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["Open API"])

    @router.get(
        EXPORT_PATH,
        summary="Export the app's calls of a window of at most 31 days (CSV or NDJSON)",
        description=(
            "The calls histories would list for the same window and filters, all of "
            "them, newest first, streamed. `format=csv`: a header line, then one row per "
            f"call with the columns {', '.join(CSV_COLUMNS)} (RFC 4180; cells a "
            "spreadsheet would take for a formula start with an apostrophe). "
            "`format=ndjson`: one histories record (JSON) per line. `hash` = "
            "sha256(appId + created_from + created_to + the filters sent, in the order "
            f"{' + '.join(FILTER_PARAMS)} + format + appSecret); the order "
            "created_from + created_to + appId + ... is accepted too."
        ),
        responses={
            200: {"description": "The calls, streamed.",
                  "content": {t: {} for t in FORMATS.values()}},
            **error_docs("invalid_parameter", "unauthorized", "too_large", "rate_limited",
                         "app_rate_limited"),
        },
        openapi_extra=required("appId", "created_from", "created_to", "format", "hash"),
    )
    async def export(
        request: Request,
        appId: str | None = Query(None, description="The app id."),
        created_from: str | None = Query(
            None, description="Start of the window.", examples=["2026-11-01"]),
        created_to: str | None = Query(
            None, description="End of the window (inclusive).", examples=["2026-11-30"]),
        phone: str | None = Query(None, description="As in histories."),
        status_detail: str | None = Query(None, description="As in histories."),
        direction: str | None = Query(None, description="As in histories."),
        device: str | None = Query(None, description="As in histories."),
        did: str | None = Query(None, description="As in histories."),
        external_id: str | None = Query(None, description="As in histories."),
        format: str | None = Query(None, description="csv or ndjson.", examples=["csv"]),
        hash: str | None = Query(
            None, description="sha256(appId+created_from+created_to+[filters]+format+"
                              "appSecret)."),
    ) -> Any:
        client = client_of(request)
        ctx.auth.check_not_blocked(client)
        p = single_params(request, EXPORT_PARAMS)
        app_id, given = p["appId"], p["hash"]
        if not app_id:
            raise unauthorized("appId is required.")
        if not given:
            raise unauthorized("hash is required: see the endpoint's documented formula.")
        c_from, c_to, fmt = p["created_from"], p["created_to"], p["format"]
        if not c_from:
            raise bad_param(f"created_from is required: {ACCEPTED_FORMS}.")
        if not c_to:
            raise bad_param(f"created_to is required: {ACCEPTED_FORMS}.")
        if fmt not in FORMATS:
            raise bad_param("format must be csv or ndjson.")
        try:
            window = parse_window(c_from, c_to, ctx.tz)
        except WindowError as exc:
            raise bad_param(str(exc)) from None
        filters = parse_filters(p)
        extras = (*present(p, FILTER_PARAMS), fmt)
        app = await ctx.auth.app_by_hash(
            client, app_id, given,
            lambda s: history_hash_inputs(app_id, c_from, c_to, "", "", s, extras, paged=False),
        )
        q = filters.query(app.app_id, window.start, window.end)
        name = f"histories.{fmt}"
        return StreamingResponse(
            _body(ctx, q, fmt), media_type=FORMATS[fmt],
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store"},
        )

    return router
