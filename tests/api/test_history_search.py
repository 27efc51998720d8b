"""histories filters, their hash rule, cursor paging and the streamed export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from tongdai.api.export import BATCH, CSV_COLUMNS
from tongdai.api.history_query import EXTRA_PARAMS
from tongdai.store import Store

from .support import Tenant, Tenants, cdr, sha, sqlite_only

URL = "/oapi/v1/call/histories"
EXPORT = "/oapi/v1/call/histories/export"
NOV1 = datetime(2026, 11, 1, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp()
DAY = ("2026-11-01", "2026-11-01")


def signed(t: Tenant, *, created: tuple[str, str] = DAY, limit: str | None = None,
           page: str | None = None, vendor: bool = False, **extra: str) -> dict[str, str]:
    """A histories query signed by the documented rule: the seed's parameters, the
    extra ones present in EXTRA_PARAMS order, the secret (or the vendor's order)."""
    f, to = created
    tail = "".join(extra[n] for n in EXTRA_PARAMS if n in extra)
    seed = (f, to, limit or "", page or "")
    h = sha(*seed, t.app_id, tail, t.secret) if vendor else sha(t.app_id, *seed, tail, t.secret)
    q = {"appId": t.app_id, "created_from": f, "created_to": to, "hash": h, **extra}
    if limit is not None:
        q["limit"] = limit
    if page is not None:
        q["page"] = page
    return q


def export_q(t: Tenant, fmt: str, *, created: tuple[str, str] = DAY, vendor: bool = False,
             **filters: str) -> dict[str, str]:
    f, to = created
    tail = "".join(filters[n] for n in EXTRA_PARAMS if n in filters) + fmt
    h = sha(f, to, t.app_id, tail, t.secret) if vendor else sha(t.app_id, f, to, tail, t.secret)
    return {"appId": t.app_id, "created_from": f, "created_to": to, "format": fmt,
            "hash": h, **filters}


def _party(n: str) -> dict[str, str]:
    return {"number": n, "type": "realnumber"}


async def _numbers_fixture(store: Store, t: Tenant, other: Tenant) -> None:
    await store.write_calls(cdrs=[
        cdr(t.app_id, NOV1 + 10, "old-form", caller=_party("01693608879"), direction="to_ab",
            did_number="02873019555", callee={"number": "101", "type": "user",
                                              "username": "alice"}, sip_users=("alice",)),
        cdr(t.app_id, NOV1 + 20, "e164", callee=_party("+84393608879"), status_detail="BUSY",
            sip_users=("anna",)),
        cdr(t.app_id, NOV1 + 30, "new-form", callee=_party("0393608879"), sip_users=("alice",)),
        cdr(t.app_id, NOV1 + 40, "someone-else", callee=_party("0393608870")),
        cdr(other.app_id, NOV1 + 50, "other-app", callee=_party("0393608879")),
    ])


def _ids(r: httpx.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [rec["unix_timestamp"] - int(NOV1) for rec in r.json()["data"]]


async def test_phone_finds_old_and_new_forms_of_a_number(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await _numbers_fixture(store, a, tenants.b)
    for written in ("01693608879", "0393608879", "+84 39 360 8879", "84393608879"):
        r = await client.get(URL, params=signed(a, phone=written))
        assert _ids(r) == [30, 20, 10], written
        body = r.json()
        assert list(body) == ["data", "total", "page", "limit"] and body["total"] == 3
    r = await client.get(URL, params=signed(a, phone="0912 000 000"))
    assert _ids(r) == [] and r.json()["total"] == 0


async def test_every_filter_and_their_combination(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await _numbers_fixture(store, a, tenants.b)
    assert _ids(await client.get(URL, params=signed(a, status_detail="BUSY"))) == [20]
    assert _ids(await client.get(URL, params=signed(a, status_detail="busy"))) == [20]
    assert _ids(await client.get(URL, params=signed(a, direction="to_ab"))) == [10]
    assert _ids(await client.get(URL, params=signed(a, device="alice"))) == [30, 10]
    assert _ids(await client.get(URL, params=signed(a, did="028 7301 9555"))) == [10]
    both = signed(a, phone="0393608879", device="alice", direction="from_ab")
    assert _ids(await client.get(URL, params=both)) == [30]
    # An empty filter is no filter (and adds nothing to the hash).
    assert _ids(await client.get(URL, params=signed(a, phone=""))) == [40, 30, 20, 10]


@sqlite_only
@pytest.mark.parametrize(("name", "value"), [
    ("phone", "abc"), ("status_detail", "OK"), ("direction", "in"), ("device", "a b"),
    ("did", "x"), ("after", "!!!"), ("after", "bm90LWEtY3Vyc29y"),
])
async def test_bad_filters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, tenants: Tenants, name: str, value: str
) -> None:
    r = await client.get(URL, params=signed(tenants.a, **{name: value}))
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_parameter" and r.json()["message"].startswith(name)


@sqlite_only
async def test_hash_rule_for_filters(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await _numbers_fixture(store, a, tenants.b)
    good = signed(a, phone="0393608879", direction="from_ab", limit="5", page="1")
    assert (await client.get(URL, params=good)).status_code == 200
    # The seed's parameters, then the filters in the documented order, then the secret.
    assert good["hash"] == sha(a.app_id, *DAY, "5", "1", "0393608879", "from_ab", a.secret)
    # The vendor page's order: appId after page.
    vendor = signed(a, phone="0393608879", direction="from_ab", vendor=True)
    assert (await client.get(URL, params=vendor)).status_code == 200
    assert (await client.get(URL, params=signed(a, vendor=True))).status_code == 200
    refused = [
        # The filter left out of the hash.
        {**signed(a), "phone": "0393608879"},
        # The filters in another order.
        {**good, "hash": sha(a.app_id, *DAY, "5", "1", "from_ab", "0393608879", a.secret)},
        # The filter hashed in another form than sent.
        {**good, "hash": sha(a.app_id, *DAY, "5", "1", "01693608879", "from_ab", a.secret)},
    ]
    for q in refused:
        r = await client.get(URL, params=q)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"


@sqlite_only
async def test_seed_requests_hash_and_answer_as_before(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await _numbers_fixture(store, a, tenants.b)
    q = {"appId": a.app_id, "created_from": DAY[0], "created_to": DAY[1], "limit": "2",
         "hash": sha(a.app_id, *DAY, "2", "", a.secret)}
    r = await client.get(URL, params=q)
    assert r.status_code == 200
    assert r.json() == {"data": r.json()["data"], "total": 4, "page": 1, "limit": 2}
    assert list(r.json()) == ["data", "total", "page", "limit"]


async def test_cursor_walk_over_many_pages(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    # 263 calls on 40 distinct instants: most tie, and ties must neither repeat nor
    # vanish between pages.
    calls = [cdr(a.app_id, NOV1 + 60 * (n % 40), f"c{(n * 7919) % 1000:03d}-{n}",
                 recording=f"call_recording_r{n}.mp3", callee=_party("0912345678"))
             for n in range(263)]
    await store.write_calls(cdrs=calls)
    for extra in ({}, {"phone": "0912345678"}):
        seen: list[str] = []
        after, pages = "", 0
        while after is not None:
            r = await client.get(URL, params=signed(a, limit="17", after=after, **extra))
            assert r.status_code == 200, r.text
            body = r.json()
            assert list(body) == ["data", "total", "page", "limit", "next"]
            assert body["total"] == 263
            seen += [rec["recording"] for rec in body["data"]]
            after, pages = body["next"], pages + 1
        assert pages == 16  # 15 full pages and one of 8
        assert len(seen) == 263 and len(set(seen)) == 263
        stamps = [60 * (int(s[16:-4]) % 40) for s in seen]
        assert stamps == sorted(stamps, reverse=True)
    # A call arriving mid-walk at the top does not shift what follows.
    r = await client.get(URL, params=signed(a, limit="100", after=""))
    first = [rec["recording"] for rec in r.json()["data"]]
    await store.add_cdr(cdr(a.app_id, NOV1 + 3000, "late", recording="call_recording_late.mp3"))
    r = await client.get(URL, params=signed(a, limit="100", after=r.json()["next"]))
    second = [rec["recording"] for rec in r.json()["data"]]
    assert not set(first) & set(second) and len(first) + len(second) == 200


@sqlite_only
async def test_page_cannot_be_combined_with_after(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    r = await client.get(URL, params=signed(tenants.a, page="2", after=""))
    assert r.status_code == 400 and r.json()["message"].startswith("page")


async def asgi_get(
    app: FastAPI, path: str, params: dict[str, str]
) -> tuple[int, dict[str, str], list[bytes]]:
    """GET through the ASGI app itself, keeping each body message as sent (httpx's
    ASGI transport joins them)."""
    sent: list[dict[str, Any]] = []
    requested = False
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays until the whole body has arrived
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)
        if msg["type"] == "http.response.body" and not msg.get("more_body", False):
            done.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": urlencode(params).encode(), "headers": [(b"host", b"api.test")],
             "client": ("203.0.113.7", 40000), "server": ("api.test", 80), "root_path": ""}
    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, [m.get("body", b"") for m in sent[1:]]


async def test_export_streams_csv_and_ndjson(
    api: FastAPI, client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    n = 2 * BATCH + 37
    await store.write_calls(cdrs=[cdr(a.app_id, NOV1 + i, f"x{i:05d}", callee=_party("0912345678"))
                          for i in range(n)])
    await store.add_cdr(cdr(a.app_id, NOV1 + n, "formula",
                            caller={"number": "=HYPERLINK(\"http://x\")", "type": "realnumber"},
                            callee=_party("+84393608879")))
    await store.add_cdr(cdr(tenants.b.app_id, NOV1, "b-call"))
    status, headers, chunks = await asgi_get(api, EXPORT, export_q(a, "csv"))
    assert status == 200
    assert headers["content-type"].startswith("text/csv")
    assert "attachment" in headers["content-disposition"]
    # Sent batch by batch as the store reads them (the header line, three batches).
    assert len([c for c in chunks if c]) == 4
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == n + 2
    top = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert top["caller_number"] == "'=HYPERLINK(\"http://x\")"  # defused
    assert top["callee_number"] == "+84393608879"  # a plain number stays as it is
    assert top["call_id"] == "formula"
    assert rows[-1][CSV_COLUMNS.index("call_id")] == "x00000"

    r = await client.get(EXPORT, params=export_q(a, "ndjson", phone="0912 345 678"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    lines = r.text.splitlines()
    assert len(lines) == n
    assert list(json.loads(lines[0]))[:10] == [
        "caller", "callee", "class", "did_number", "direction", "status_detail",
        "duration_seconds", "unix_timestamp", "billing_seconds", "recording"]
    assert json.loads(lines[-1])["unix_timestamp"] == int(NOV1)
    r = await client.get(EXPORT, params=export_q(a, "ndjson", vendor=True))
    assert r.status_code == 200 and len(r.text.splitlines()) == n + 1


@sqlite_only
@pytest.mark.parametrize(("change", "status", "code"), [
    ({"format": "xml"}, 400, "invalid_parameter"),
    ({"created_to": "2026-12-15"}, 400, "invalid_parameter"),
    ({"hash": "0" * 64}, 401, "unauthorized"),
    ({"appId": ""}, 401, "unauthorized"),
])
async def test_export_refusals(
    client: httpx.AsyncClient, tenants: Tenants, change: dict[str, Any], status: int, code: str
) -> None:
    q = export_q(tenants.a, "csv", created=(change.get("created_from", "2026-11-01"),
                                            change.get("created_to", "2026-11-01")))
    q.update(change)
    r = await client.get(EXPORT, params=q)
    assert r.status_code == status and r.json()["code"] == code
