from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tongdai.store import Store

from .support import Tenant, Tenants, cdr, sha, sqlite_only

URL = "/oapi/v1/call/histories"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOV1 = datetime(2026, 11, 1, tzinfo=HCM).timestamp()


def signed(
    t: Tenant, created_from: str, created_to: str, *, limit: str | None = None,
    page: str | None = None, hash_limit: str | None = None, hash_page: str | None = None,
    app_id: str | None = None,
) -> dict[str, str]:
    """Query parameters with ``hash`` over the values as sent (or as overridden)."""
    app_id = app_id if app_id is not None else t.app_id
    hl = hash_limit if hash_limit is not None else (limit or "")
    hp = hash_page if hash_page is not None else (page or "")
    q = {"appId": app_id, "created_from": created_from, "created_to": created_to,
         "hash": sha(app_id, created_from, created_to, hl, hp, t.secret)}
    if limit is not None:
        q["limit"] = limit
    if page is not None:
        q["page"] = page
    return q


async def get(client: httpx.AsyncClient, params: Any) -> httpx.Response:
    return await client.get(URL, params=params)


async def test_lists_the_apps_calls_with_the_seed_fields_in_order(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a, b = tenants.a, tenants.b
    await store.add_cdr(cdr(a.app_id, NOV1 + 3600, "call-a1", recording="call_recording_abc.mp3",
                            klass="trunking", did_number="02873019555", direction="to_ab",
                            caller={"number": "01693608879", "type": "realnumber"},
                            callee={"number": "101", "type": "user", "username": "alice"}))
    await store.add_cdr(cdr(a.app_id, NOV1 + 7200, "call-a2", klass="one_one",
                            status_detail="BUSY", billing_seconds=0))
    await store.add_cdr(cdr(b.app_id, NOV1 + 5000, "call-b1"))
    r = await get(client, signed(a, "2026-11-01", "2026-11-01"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["data", "total", "page", "limit"]
    assert (body["total"], body["page"], body["limit"]) == (2, 1, 20)
    first, second = body["data"]
    # The seed's ten fields in the seed's order, then tongdai's call_id.
    assert list(first) == ["caller", "callee", "class", "did_number", "direction",
                           "status_detail", "duration_seconds", "unix_timestamp",
                           "billing_seconds", "recording", "call_id"]
    assert first["class"] == "one_one" and first["status_detail"] == "BUSY"  # newest first
    assert second == {
        "caller": {"number": "01693608879", "type": "realnumber"},
        "callee": {"number": "101", "type": "user", "username": "alice"},
        "class": "trunking", "did_number": "02873019555", "direction": "to_ab",
        "status_detail": "SUCCESS", "duration_seconds": 50,
        "unix_timestamp": int(NOV1 + 3600), "billing_seconds": 43,
        "recording": "call_recording_abc.mp3", "call_id": "call-a1",
    }


async def test_tenant_isolation(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a, b = tenants.a, tenants.b
    await store.add_cdr(cdr(a.app_id, NOV1 + 10, "call-a1"))
    # B signs with its own secret but names A's app: refused.
    forged = signed(b, "2026-11-01", "2026-11-02", app_id=a.app_id)
    r = await get(client, forged)
    assert r.status_code == 401
    # B's own view has nothing.
    r = await get(client, signed(b, "2026-11-01", "2026-11-02"))
    assert r.status_code == 200
    assert r.json()["total"] == 0 and r.json()["data"] == []


@sqlite_only
@pytest.mark.parametrize(
    ("limit", "page", "hash_limit", "hash_page"),
    [
        (None, None, "", ""),
        (None, None, "20", "1"),
        (None, None, "20", ""),
        (None, None, "", "1"),
        ("20", "1", None, None),
        ("5", None, "5", ""),
        ("5", None, "5", "1"),
        (None, "2", "", "2"),
        (None, "2", "20", "2"),
        ("", "", "", ""),  # present but empty: same as omitted
        ("", "", "20", "1"),
        ("05", "01", None, None),  # hashed as sent, read as numbers
    ],
)
async def test_each_hash_form_is_accepted(
    client: httpx.AsyncClient, tenants: Tenants, limit: str | None, page: str | None,
    hash_limit: str | None, hash_page: str | None,
) -> None:
    q = signed(tenants.a, "2026-11-01", "2026-11-30", limit=limit, page=page,
               hash_limit=hash_limit, hash_page=hash_page)
    r = await get(client, q)
    assert r.status_code == 200, r.text


@sqlite_only
@pytest.mark.parametrize(
    ("limit", "page", "hash_limit", "hash_page"),
    [
        ("20", "1", "", ""),  # sent values must be hashed as sent
        ("20", None, "", ""),
        (None, "1", "", ""),
        ("05", None, "5", ""),
        (None, None, "21", ""),
    ],
)
async def test_hash_forms_that_do_not_match_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, limit: str | None, page: str | None,
    hash_limit: str, hash_page: str,
) -> None:
    q = signed(tenants.a, "2026-11-01", "2026-11-30", limit=limit, page=page,
               hash_limit=hash_limit, hash_page=hash_page)
    r = await get(client, q)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"


@sqlite_only
async def test_hash_in_upper_case_and_unencoded_plus(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await store.add_cdr(cdr(a.app_id, NOV1 + 8 * 3600, "call-1"))
    q = signed(a, "2026-11-01", "2026-11-02")
    q["hash"] = q["hash"].upper()
    assert (await get(client, q)).status_code == 200
    # "+07:00" written raw into the URL: the server sees a space, the client hashed "+".
    frm, to = "2026-11-01T08:00:00+07:00", "2026-11-01T09:00:00+07:00"
    h = sha(a.app_id, frm, to, "", "", a.secret)
    raw = f"{URL}?appId={a.app_id}&created_from={frm}&created_to={to}&hash={h}"
    r = await client.get(raw)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1


async def test_bare_dates_cover_whole_days_in_local_time(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    # Local (UTC+7) 2026-11-01 00:00:00 and 23:59:59.5, and 2026-11-02 00:00:00.
    await store.add_cdr(cdr(a.app_id, NOV1, "first"))
    await store.add_cdr(cdr(a.app_id, NOV1 + 86399.5, "last"))
    await store.add_cdr(cdr(a.app_id, NOV1 + 86400, "next-day"))
    await store.add_cdr(cdr(a.app_id, NOV1 - 0.5, "day-before"))
    r = await get(client, signed(a, "2026-11-01", "2026-11-01"))
    assert r.json()["total"] == 2
    # The same day in UTC starts 7 hours later.
    r = await get(client, signed(a, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"))
    assert r.json()["total"] == 2  # "last" and "next-day"
    r = await get(client, signed(a, str(int(NOV1)), str(int(NOV1 + 86400))))
    assert r.json()["total"] == 3
    # An end with whole seconds covers that whole second (the records show integer
    # unix_timestamp), a fractional end is exact.
    r = await get(client, signed(a, "2026-11-01 00:00:00", "2026-11-01 23:59:59"))
    assert r.json()["total"] == 2
    r = await get(client, signed(a, "2026-11-01 00:00:00", "2026-11-01 23:59:59.4"))
    assert r.json()["total"] == 1


@sqlite_only
async def test_the_31_day_window(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a = tenants.a
    assert (await get(client, signed(a, "2026-01-01", "2026-01-31"))).status_code == 200
    r = await get(client, signed(a, "2026-01-01", "2026-02-01"))
    assert r.status_code == 400
    assert r.json() == {"code": "invalid_parameter",
                        "message": "created_to must be at most 31 days after created_from."}
    ok = signed(a, "2026-01-01 00:00:00", "2026-02-01 00:00:00")
    assert (await get(client, ok)).status_code == 200
    r = await get(client, signed(a, "2026-01-01 00:00:00", "2026-02-01 00:00:01"))
    assert r.status_code == 400


@sqlite_only
@pytest.mark.parametrize(
    ("created_from", "created_to", "limit", "page", "param"),
    [
        ("", "2026-11-02", None, None, "created_from"),
        ("2026-11-01", "", None, None, "created_to"),
        ("01/11/2026", "2026-11-02", None, None, "created_from"),
        ("2026-11-01", "tomorrow", None, None, "created_to"),
        ("2026-11-31", "2026-12-01", None, None, "created_from"),
        ("1793466000000", "2026-12-01", None, None, "created_from"),
        ("2026-11-03", "2026-11-02", None, None, "created_from"),
        ("2026-11-01", "2026-11-02", "0", None, "limit"),
        ("2026-11-01", "2026-11-02", "101", None, "limit"),
        ("2026-11-01", "2026-11-02", "-1", None, "limit"),
        ("2026-11-01", "2026-11-02", "ten", None, "limit"),
        ("2026-11-01", "2026-11-02", "2.5", None, "limit"),
        ("2026-11-01", "2026-11-02", "99999999999999999999", None, "limit"),
        ("2026-11-01", "2026-11-02", None, "0", "page"),
        ("2026-11-01", "2026-11-02", None, "1000001", "page"),
        ("2026-11-01", "2026-11-02", None, "x", "page"),
        ("2026-11-01", "2026-11-02", None, "\u0661", "page"),  # Arabic-Indic one
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: httpx.AsyncClient, tenants: Tenants, created_from: str, created_to: str,
    limit: str | None, page: str | None, param: str,
) -> None:
    q = signed(tenants.a, created_from, created_to, limit=limit, page=page)
    r = await get(client, q)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_parameter"
    assert r.json()["message"].startswith(param + " ")


@sqlite_only
async def test_missing_app_id_or_hash_is_401(client: httpx.AsyncClient, tenants: Tenants) -> None:
    q = signed(tenants.a, "2026-11-01", "2026-11-02")
    for name in ("appId", "hash"):
        r = await get(client, {k: v for k, v in q.items() if k != name})
        assert r.status_code == 401
        assert r.json()["message"].startswith(name + " is required")


@sqlite_only
async def test_repeated_parameter_is_refused(client: httpx.AsyncClient, tenants: Tenants) -> None:
    q = [*signed(tenants.a, "2026-11-01", "2026-11-02").items(), ("created_to", "2026-11-03")]
    r = await get(client, q)
    assert r.status_code == 400
    assert r.json()["message"] == "created_to must be given once."


async def test_limits_and_pages(client: httpx.AsyncClient, tenants: Tenants, store: Store) -> None:
    a = tenants.a
    for i in range(120):
        await store.add_cdr(cdr(a.app_id, NOV1 + i, f"call-{i:03d}"))
    r = await get(client, signed(a, "2026-11-01", "2026-11-01"))
    assert len(r.json()["data"]) == 20 and r.json()["total"] == 120
    r = await get(client, signed(a, "2026-11-01", "2026-11-01", limit="100"))
    assert len(r.json()["data"]) == 100
    r = await get(client, signed(a, "2026-11-01", "2026-11-01", limit="100", page="2"))
    body = r.json()
    assert (len(body["data"]), body["page"], body["limit"]) == (20, 2, 100)
    assert body["data"][-1]["unix_timestamp"] == int(NOV1)  # the oldest is last
    r = await get(client, signed(a, "2026-11-01", "2026-11-01", limit="100", page="3"))
    assert r.json()["data"] == [] and r.json()["total"] == 120


async def test_paging_is_stable_with_equal_timestamps(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    ids = [f"call-{i:03d}-{(i * 7919) % 1000:03d}" for i in range(47)]
    for n, call_id in enumerate(ids):
        # Three instants only: most rows tie on started_at.
        await store.add_cdr(cdr(a.app_id, NOV1 + 60 * (n % 3), call_id,
                                recording=f"call_recording_r{n}.mp3"))
    seen: list[str] = []
    for page in range(1, 7):
        r = await get(client, signed(a, "2026-11-01", "2026-11-01", limit="8", page=str(page)))
        assert r.status_code == 200
        seen += [rec["recording"] for rec in r.json()["data"]]
    assert len(seen) == 47 and len(set(seen)) == 47
    stamps = [int(s.removeprefix("call_recording_r").removesuffix(".mp3")) for s in seen]
    assert [60 * (n % 3) for n in stamps] == sorted((60 * (n % 3) for n in stamps), reverse=True)
    again: list[str] = []
    for page in range(1, 7):
        r = await get(client, signed(a, "2026-11-01", "2026-11-01", limit="8", page=str(page)))
        again += [rec["recording"] for rec in r.json()["data"]]
    assert again == seen


async def test_timezone_setting_changes_the_local_day(
    store: Store, tenants: Tenants, bus: Any, calls: Any, recordings: Any
) -> None:
    from tongdai.api import create_api
    from tongdai.settings import Settings

    a = tenants.a
    utc_midnight = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    await store.add_cdr(cdr(a.app_id, utc_midnight + 3600, "utc-1am"))  # 08:00 in HCM
    api = create_api(settings=Settings(timezone="UTC"), store=store, bus=bus, calls=calls,
                     recordings=recordings)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        r = await c.get(URL, params=signed(a, "2026-11-01 00:00:00", "2026-11-01 00:30:00"))
        assert r.json()["total"] == 0
        r = await c.get(URL, params=signed(a, "2026-11-01 00:30:00", "2026-11-01 01:00:00"))
        assert r.json()["total"] == 1
