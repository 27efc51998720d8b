from __future__ import annotations

import time

import httpx
import pytest

from tongdai.pbx.credentials import digest_keys
from tongdai.store import Store

from .support import REALM, Tenants, sha, sqlite_only

URL = "/oapi/v1/voice/auth_token"


async def test_issues_a_token_stored_only_as_its_hash(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    before = int(time.time())
    r = await client.post(URL, headers=a.headers(), json=a.creds())
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"value", "expire"}
    token = body["value"]
    assert isinstance(token, str) and len(token) >= 43  # 32 random bytes, base64url
    assert before + 3600 <= body["expire"] <= int(time.time()) + 3600
    rec = await store.get_token(sha(token))
    assert rec is not None
    assert (rec.app_id, rec.sip_user, rec.revoked) == (a.app_id, "alice", False)
    assert rec.expires_at == body["expire"]
    assert await store.get_token(token) is None
    again = await client.post(URL, headers=a.headers(), json=a.creds())
    assert again.json()["value"] != token


@sqlite_only
async def test_hash_is_accepted_in_upper_case(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a = tenants.a
    r = await client.post(URL, headers=a.headers(hash_=sha(a.app_id, a.secret).upper()),
                          json=a.creds())
    assert r.status_code == 200, r.text


@sqlite_only
async def test_form_body_and_numeric_sip_user(
    client: httpx.AsyncClient, tenants: Tenants, store: Store
) -> None:
    a = tenants.a
    await store.add_device(a.app_id, "1001", digest_keys("1001", REALM, "pw1001"))
    r = await client.post(URL, headers=a.headers(), json={"sipUser": 1001, "sipPassword": "pw1001"})
    assert r.status_code == 200, r.text
    r = await client.post(URL, headers=a.headers(), data={"sipUser": "alice",
                                                          "sipPassword": "alice-pw"})
    assert r.status_code == 200, r.text


@sqlite_only
@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "x-auth-app-id"),
        ({"x-auth-app-id": "APP"}, "x-auth-app-hash"),
        ({"x-auth-app-hash": "HASH"}, "x-auth-app-id"),
        ({"x-auth-app-id": "APP", "x-auth-app-hash": ""}, "x-auth-app-hash"),
    ],
)
async def test_missing_headers_are_401_naming_the_header(
    client: httpx.AsyncClient, tenants: Tenants, headers: dict[str, str], fragment: str
) -> None:
    a = tenants.a
    headers = {k: v.replace("APP", a.app_id).replace("HASH", sha(a.app_id, a.secret))
               for k, v in headers.items()}
    r = await client.post(URL, headers=headers, json=a.creds())
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert fragment in r.json()["message"]


@sqlite_only
async def test_wrong_app_hash_and_unknown_app_look_the_same(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    a, b = tenants.a, tenants.b
    wrong = await client.post(URL, headers=a.headers(hash_=sha(a.app_id, b.secret)),
                              json=a.creds())
    unknown = await client.post(URL, headers={"x-auth-app-id": "nope",
                                              "x-auth-app-hash": sha("nope", a.secret)},
                                json=a.creds())
    truncated = await client.post(URL, headers=a.headers(hash_=sha(a.app_id, a.secret)[:-1]),
                                  json=a.creds())
    for r in (wrong, unknown, truncated):
        assert r.status_code == 401
        assert r.json() == wrong.json()
        assert r.json()["code"] == "unauthorized"


async def test_device_errors_do_not_reveal_other_tenants(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    a = tenants.a
    bad_pw = await client.post(URL, headers=a.headers(),
                               json={"sipUser": "alice", "sipPassword": "nope"})
    # bob exists, with this very password, but belongs to app B.
    foreign = await client.post(URL, headers=a.headers(),
                                json={"sipUser": "bob", "sipPassword": "bob-pw"})
    missing = await client.post(URL, headers=a.headers(),
                                json={"sipUser": "nobody", "sipPassword": "x"})
    for r in (bad_pw, foreign, missing):
        assert r.status_code == 401, r.text
        assert r.json() == bad_pw.json()
    assert "sipPassword" in bad_pw.json()["message"]


@sqlite_only
async def test_missing_password_is_401(client: httpx.AsyncClient, tenants: Tenants) -> None:
    r = await client.post(URL, headers=tenants.a.headers(), json={"sipUser": "alice"})
    assert r.status_code == 401
    assert "sipPassword" in r.json()["message"]


@sqlite_only
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "JSON object"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"alice"', "JSON object"),
        (b'{"sipPassword": "x"}', "sipUser is required"),
        (b'{"sipUser": "", "sipPassword": "x"}', "sipUser is required"),
        (b'{"sipUser": ["alice"], "sipPassword": "x"}', "sipUser must be a string"),
        (b'{"sipUser": true, "sipPassword": "x"}', "sipUser must be a string"),
        (b'{"sipUser": "alice", "sipPassword": 1.5}', "sipPassword must be a string"),
        (b'{"sipUser": "' + b"a" * 200 + b'", "sipPassword": "x"}', "at most 128"),
        (b'{"sipUser": "\\ud800", "sipPassword": "x"}', "valid Unicode"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    client: httpx.AsyncClient, tenants: Tenants, content: bytes, fragment: str
) -> None:
    r = await client.post(URL, headers={**tenants.a.headers(),
                                        "content-type": "application/json"}, content=content)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_parameter"
    assert fragment in r.json()["message"]


@sqlite_only
async def test_repeated_failures_are_throttled_per_address(
    client: httpx.AsyncClient, tenants: Tenants, api: object
) -> None:
    a = tenants.a
    for _ in range(20):
        r = await client.post(URL, headers=a.headers(),
                              json={"sipUser": "alice", "sipPassword": "guess"})
        assert r.status_code == 401
    # Now even the right password is refused from this address ...
    r = await client.post(URL, headers=a.headers(), json=a.creds())
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert 0 < int(r.headers["retry-after"]) <= 301
    # ... and on the other endpoints, while another address is served.
    r = await client.get("/oapi/v1/call/histories", params={"appId": a.app_id})
    assert r.status_code == 429
    other = httpx.ASGITransport(app=api, client=("198.51.100.9", 5555))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=other, base_url="http://api.test") as c2:
        r = await c2.post(URL, headers=a.headers(), json=a.creds())
        assert r.status_code == 200


@sqlite_only
async def test_get_is_405(client: httpx.AsyncClient) -> None:
    r = await client.get(URL)
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
    assert "POST" in r.headers["allow"]
