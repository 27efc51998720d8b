from __future__ import annotations

import httpx
import pytest

from tongdai.pbx.protocol import InvalidNumber, NoRoute
from tongdai.store import Store

from .support import FakeCalls, Tenants, sha, sqlite_only


def url(number: str) -> str:
    return f"/oapi/v1/call/click-to-call/{number}"


@sqlite_only
@pytest.mark.parametrize(
    ("number", "dialled"),
    [
        ("0912345678", "0912345678"),
        ("+84912345678", "+84912345678"),
        ("01693608879", "01693608879"),  # retired mobile: the dial plan renumbers it
        ("84912345678", "84912345678"),
        ("19001234", "19001234"),
        ("113", "113"),
        ("+1%20415%20555%200100", "+14155550100"),
        ("102", "102"),  # anna's extension
        ("anna", "anna"),  # a sipUser of the same app
        ("0912%20345%20678", "0912345678"),  # spaces are dropped
        ("+84-912-345-678", "+84912345678"),
        ("(028)%207301%209555", "02873019555"),
    ],
)
async def test_starts_a_call_for_a_registered_device(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls, number: str, dialled: str
) -> None:
    calls.registered.add("alice")
    a = tenants.a
    r = await client.post(url(number), headers=a.headers(), json=a.creds())
    assert r.status_code == 200, r.text
    assert r.json() == {"call_id": "c2c-1"}
    assert calls.started == [
        {"app_id": a.app_id, "sip_user": "alice", "number": dialled, "call_id": "c2c-1"}]


@sqlite_only
@pytest.mark.parametrize(
    "number",
    [
        "1",  # too short and not an extension
        "12",  # two digits: no Vietnamese number, no extension of this app
        "19",
        "999",  # three digits, not an emergency number nor an extension
        "0912",  # a mobile prefix, too few digits
        "09123456789",  # one digit too many for a mobile
        "0101234567",  # no such prefix or area code
        "12345678901234567890",
        "123456789012345678901",  # 21 digits
        "bob",  # a device of another app
        "nobody",
        "09x2345678",
        "++84912345678",
        "%EF%BC%90%EF%BC%99%EF%BC%91%EF%BC%92",  # full-width digits
        "0912345678%3Bfoo%3Dbar",
        "sip:alice@example.com",
        "%27%20OR%201%3D1",
    ],
)
async def test_rejects_numbers_that_are_neither_phone_numbers_nor_devices(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls, number: str
) -> None:
    calls.registered.add("alice")
    a = tenants.a
    r = await client.post(url(number), headers=a.headers(), json=a.creds())
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_number"
    assert r.json()["message"].startswith("number must be")
    assert calls.started == []  # nobody was rung


@sqlite_only
async def test_offline_device_is_400_device_offline(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    a = tenants.a
    r = await client.post(url("0912345678"), headers=a.headers(), json=a.creds())
    assert r.status_code == 400
    assert r.json()["code"] == "device_offline"
    assert "alice" in r.json()["message"]
    assert calls.started == []


@sqlite_only
async def test_device_going_offline_during_the_request_is_device_offline(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("alice")
    calls.offline_on_call = True
    a = tenants.a
    r = await client.post(url("0912345678"), headers=a.headers(), json=a.creds())
    assert r.status_code == 400
    assert r.json()["code"] == "device_offline"


@sqlite_only
async def test_auth_comes_before_anything_else(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.update({"alice", "bob"})
    a, b = tenants.a, tenants.b
    # App B's valid hash cannot drive app A's device.
    r = await client.post(url("0912345678"), headers=b.headers(), json=a.creds())
    assert r.status_code == 401
    r = await client.post(url("0912345678"),
                          headers=a.headers(hash_=sha(a.app_id, "not-the-secret")),
                          json=a.creds())
    assert r.status_code == 401
    r = await client.post(url("0912345678"), headers=a.headers(),
                          json={"sipUser": "alice", "sipPassword": "wrong"})
    assert r.status_code == 401
    assert calls.started == []


async def test_b_devices_reach_their_own_extensions(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    calls.registered.add("bob")
    b = tenants.b
    r = await client.post(url("anna"), headers=b.headers(), json=b.creds())
    assert r.status_code == 400  # anna belongs to app A
    r = await client.post(url("101"), headers=b.headers(), json=b.creds())
    assert r.status_code == 200
    assert calls.started[0]["app_id"] == b.app_id


@sqlite_only
async def test_number_is_required(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a = tenants.a
    r = await client.post("/oapi/v1/call/click-to-call/", headers=a.headers(), json=a.creds())
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@sqlite_only
async def test_a_number_no_trunk_serves_is_no_route(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls, store: Store
) -> None:
    calls.registered.update({"alice", "bob"})
    a, b = tenants.a, tenants.b
    # App B has no trunk: outside numbers have no route, its own extensions do.
    r = await client.post(url("0912345678"), headers=b.headers(), json=b.creds())
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "no_route"
    assert "0912345678" in r.json()["message"]
    r = await client.post(url("101"), headers=b.headers(), json=b.creds())
    assert r.status_code == 200
    # App A's only trunk now serves mobiles and nothing else.
    await store.update_trunk("carrier", app_id=a.app_id, routes="09,03")
    for number in ("02873019555", "+14155550100", "19001234"):
        r = await client.post(url(number), headers=a.headers(), json=a.creds())
        assert (r.status_code, r.json()["code"]) == (400, "no_route"), number
    r = await client.post(url("0393608879"), headers=a.headers(), json=a.creds())
    assert r.status_code == 200
    assert [c["number"] for c in calls.started] == ["101", "0393608879"]


@sqlite_only
async def test_number_is_checked_before_the_device_is_rung_even_when_offline(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls
) -> None:
    a = tenants.a  # alice is not registered
    r = await client.post(url("12"), headers=a.headers(), json=a.creds())
    assert r.json()["code"] == "invalid_number"
    r = await client.post(url("0912345678"), headers=a.headers(), json=a.creds())
    assert r.json()["code"] == "device_offline"  # a good number: the device is the issue


@sqlite_only
@pytest.mark.parametrize(
    ("refusal", "code"), [(NoRoute("0912345678"), "no_route"),
                          (InvalidNumber("0912345678"), "invalid_number")])
async def test_the_pbx_refusing_the_number_is_the_same_400(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls, refusal: Exception, code: str
) -> None:
    """The app's trunks changed between the API's check and the call: same answer."""
    calls.registered.add("alice")
    calls.refuse = refusal
    a = tenants.a
    r = await client.post(url("0912345678"), headers=a.headers(), json=a.creds())
    assert r.status_code == 400
    assert r.json()["code"] == code
    assert calls.started == []
