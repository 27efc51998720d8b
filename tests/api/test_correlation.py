"""Click-to-call correlation at the API: external_id and metadata in the body or the
query, their limits and error codes; histories records carry call_id (and the
correlation) after the seed's ten fields; search and export by external_id."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tongdai.api.correlation import MAX_EXTERNAL_ID, MAX_METADATA_BYTES
from tongdai.store import Store

from .support import FakeCalls, Tenant, Tenants, cdr, sha, sqlite_only

C2C = "/oapi/v1/call/click-to-call/0912345678"
HISTORIES = "/oapi/v1/call/histories"
EXPORT = "/oapi/v1/call/histories/export"
SEED_FIELDS = ["caller", "callee", "class", "did_number", "direction", "status_detail",
               "duration_seconds", "unix_timestamp", "billing_seconds", "recording"]
NOV1 = datetime(2026, 11, 1, 9, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")).timestamp()
DAY = "2026-11-01"
META = {"ticket": "T-1042", "campaign": "gia hạn", "priority": 2, "tags": ["vip"]}


async def _post(client: httpx.AsyncClient, t: Tenant, *, body: dict[str, Any] | None = None,
                params: dict[str, str] | None = None) -> httpx.Response:
    return await client.post(C2C, headers=t.headers(), json={**t.creds(), **(body or {})},
                             params=params)


@sqlite_only
async def test_json_body_correlation_reaches_the_call(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    r = await _post(client, tenants.a, body={"external_id": "crm-1042", "metadata": META})
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "c2c-1"}
    assert calls.started[0]["external_id"] == "crm-1042"
    assert calls.started[0]["metadata"] == META


@sqlite_only
async def test_query_and_form_bodies_carry_it_too(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    a = tenants.a
    r = await _post(client, a, params={"external_id": "q-1", "metadata": json.dumps(META)})
    assert r.status_code == 200, r.text
    form = {**a.creds(), "external_id": "f-2", "metadata": '{"ticket": "T-7"}'}
    r = await client.post(C2C, headers=a.headers(), data=form)
    assert r.status_code == 200, r.text
    # One from the body, the other from the query.
    r = await _post(client, a, body={"metadata": {"k": 1}}, params={"external_id": "42"})
    assert r.status_code == 200, r.text
    # A numeric id is taken as its digits; empty values are no values.
    r = await _post(client, a, body={"external_id": 1042, "metadata": None})
    assert r.status_code == 200, r.text
    r = await _post(client, a, body={"external_id": ""}, params={"metadata": ""})
    assert r.status_code == 200, r.text
    got = [{k: s[k] for k in ("external_id", "metadata") if k in s} for s in calls.started]
    assert got == [
        {"external_id": "q-1", "metadata": META},
        {"external_id": "f-2", "metadata": {"ticket": "T-7"}},
        {"external_id": "42", "metadata": {"k": 1}},
        {"external_id": "1042"},
        {},
    ]


@sqlite_only
async def test_a_request_without_them_starts_the_call_as_before(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    r = await _post(client, tenants.a)
    assert r.status_code == 200 and r.json() == {"call_id": "c2c-1"}
    assert calls.started == [{"app_id": tenants.a.app_id, "sip_user": "alice",
                              "number": "0912345678", "call_id": "c2c-1"}]


_BIG = {"note": "x" * MAX_METADATA_BYTES}


@sqlite_only
@pytest.mark.parametrize(("body", "params", "code"), [
    ({"external_id": "x" * (MAX_EXTERNAL_ID + 1)}, None, "invalid_external_id"),
    ({"external_id": "tab\there"}, None, "invalid_external_id"),
    ({"external_id": "nul\x00"}, None, "invalid_external_id"),
    ({"external_id": {"id": 1}}, None, "invalid_external_id"),
    ({"external_id": True}, None, "invalid_external_id"),
    ({"external_id": "a"}, {"external_id": "b"}, "invalid_external_id"),
    (None, {"external_id": "x" * (MAX_EXTERNAL_ID + 1)}, "invalid_external_id"),
    ({"metadata": _BIG}, None, "invalid_metadata"),
    ({"metadata": [1, 2]}, None, "invalid_metadata"),
    ({"metadata": "{\"a\": 1}"}, None, "invalid_metadata"),  # JSON body: an object, not text
    ({"metadata": 7}, None, "invalid_metadata"),
    ({"metadata": {"a": "nul\x00"}}, None, "invalid_metadata"),
    ({"metadata": {"a": 1}}, {"metadata": '{"a": 1}'}, "invalid_metadata"),
    (None, {"metadata": "{not json"}, "invalid_metadata"),
    (None, {"metadata": "[1]"}, "invalid_metadata"),
    (None, {"metadata": '{"n": NaN}'}, "invalid_metadata"),
    (None, {"metadata": json.dumps(_BIG)}, "invalid_metadata"),
])
async def test_bad_correlation_is_a_400_and_nobody_rings(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls,
    body: dict[str, Any] | None, params: dict[str, str] | None, code: str,
) -> None:
    calls.registered.add("alice")
    r = await _post(client, tenants.a, body=body, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert r.json()["message"].split()[0] in ("external_id", "metadata")
    assert calls.started == []


@sqlite_only
async def test_nan_in_a_json_body_is_refused(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    a = tenants.a
    raw = json.dumps({**a.creds(), "metadata": {"n": 1}}).replace("1}", "NaN}")
    r = await client.post(C2C, headers={**a.headers(), "content-type": "application/json"},
                          content=raw)
    assert r.status_code == 400 and r.json()["code"] == "invalid_metadata", r.text


@sqlite_only
async def test_metadata_at_the_limit_is_accepted(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    meta = {"note": "x" * (MAX_METADATA_BYTES - len('{"note":""}'))}
    assert len(json.dumps(meta, separators=(",", ":"))) == MAX_METADATA_BYTES
    r = await _post(client, tenants.a, body={"metadata": meta,
                                             "external_id": "é" * MAX_EXTERNAL_ID})
    assert r.status_code == 200, r.text


@sqlite_only
async def test_wrong_credentials_are_checked_before_the_correlation(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    a = tenants.a
    r = await client.post(C2C, headers=a.headers(hash_="0" * 64),
                          json={**a.creds(), "metadata": [1]})
    assert r.status_code == 401


def _signed(t: Tenant, **extra: str) -> dict[str, str]:
    order = ("phone", "status_detail", "direction", "device", "did", "external_id", "after")
    tail = "".join(extra[n] for n in order if n in extra)
    return {"appId": t.app_id, "created_from": DAY, "created_to": DAY,
            "hash": sha(t.app_id, DAY, DAY, "", "", tail, t.secret), **extra}


async def _seed(store: Store, tenants: Tenants) -> None:
    a, b = tenants.a.app_id, tenants.b.app_id
    await store.write_calls(cdrs=[
        cdr(a, NOV1 + 1, "plain"),
        cdr(a, NOV1 + 2, "tagged", external_id="crm-1042", metadata=META),
        cdr(a, NOV1 + 3, "tagged-again", external_id="crm-1042"),
        cdr(a, NOV1 + 4, "other-id", external_id="crm-9"),
        cdr(b, NOV1 + 5, "tenant-b", external_id="crm-1042"),
    ])


@sqlite_only
async def test_histories_records_carry_call_id_after_the_seed_fields(
    client: httpx.AsyncClient, store: Store, tenants: Tenants
) -> None:
    await _seed(store, tenants)
    r = await client.get(HISTORIES, params=_signed(tenants.a))
    assert r.status_code == 200, r.text
    recs = {rec["call_id"]: rec for rec in r.json()["data"]}
    assert set(recs) == {"plain", "tagged", "tagged-again", "other-id"}
    assert list(recs["plain"]) == [*SEED_FIELDS, "call_id"]
    assert list(recs["tagged"]) == [*SEED_FIELDS, "call_id", "external_id", "metadata"]
    assert recs["tagged"]["external_id"] == "crm-1042"
    assert recs["tagged"]["metadata"] == META
    assert list(recs["tagged-again"]) == [*SEED_FIELDS, "call_id", "external_id"]


@sqlite_only
async def test_histories_search_by_external_id(
    client: httpx.AsyncClient, store: Store, tenants: Tenants
) -> None:
    await _seed(store, tenants)
    a = tenants.a
    r = await client.get(HISTORIES, params=_signed(a, external_id="crm-1042"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["call_id"] for x in body["data"]] == ["tagged-again", "tagged"]
    assert body["total"] == 2
    # It joins the hash after did, before after: without it in the hash, 401.
    q = {**_signed(a), "external_id": "crm-1042"}
    assert (await client.get(HISTORIES, params=q)).status_code == 401
    r = await client.get(HISTORIES, params=_signed(a, external_id="crm-1042",
                                                   direction="from_ab", after=""))
    assert [x["call_id"] for x in r.json()["data"]] == ["tagged-again", "tagged"]
    r = await client.get(HISTORIES, params=_signed(a, external_id="x" * 129))
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"


@sqlite_only
async def test_export_has_the_correlation_columns(
    client: httpx.AsyncClient, store: Store, tenants: Tenants
) -> None:
    await _seed(store, tenants)
    a = tenants.a

    def q(fmt: str, **filters: str) -> dict[str, str]:
        tail = "".join(filters.values()) + fmt
        return {"appId": a.app_id, "created_from": DAY, "created_to": DAY, "format": fmt,
                "hash": sha(a.app_id, DAY, DAY, tail, a.secret), **filters}

    r = await client.get(EXPORT, params=q("csv"))
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    by_id = {row["call_id"]: row for row in rows}
    assert list(rows[0])[-3:] == ["call_id", "external_id", "metadata"]
    assert by_id["tagged"]["external_id"] == "crm-1042"
    assert json.loads(by_id["tagged"]["metadata"]) == META
    assert by_id["plain"]["external_id"] == "" and by_id["plain"]["metadata"] == ""
    r = await client.get(EXPORT, params=q("ndjson", external_id="crm-1042"))
    assert r.status_code == 200, r.text
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["call_id"] for x in lines] == ["tagged-again", "tagged"]
    assert lines[1]["metadata"] == META
