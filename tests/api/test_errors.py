from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tongdai.api import create_api
from tongdai.bus import InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store import Store

from .support import FakeCalls, Tenants, sqlite_only

TOKEN_URL = "/oapi/v1/voice/auth_token"


@sqlite_only
async def test_unknown_path_is_404_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/oapi/v1/nothing")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


@sqlite_only
async def test_wrong_method_is_405_json(client: httpx.AsyncClient) -> None:
    r = await client.delete("/oapi/v1/call/histories")
    assert r.status_code == 405
    assert r.json() == {"code": "method_not_allowed",
                        "message": "This endpoint does not accept that HTTP method."}


@sqlite_only
async def test_declared_oversized_body_is_413(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = b'{"sipUser": "alice", "sipPassword": "' + b"x" * 17000 + b'"}'
    r = await client.post(TOKEN_URL, headers=tenants.a.headers(), content=body)
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"


@sqlite_only
async def test_streamed_oversized_body_is_413(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"sipUser": "alice", "sipPassword": "'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"}'

    # No Content-Length: the guard counts the bytes as they arrive.
    r = await client.post(TOKEN_URL, headers=tenants.a.headers(), content=chunks())
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"


@sqlite_only
async def test_long_query_string_is_414(client: httpx.AsyncClient) -> None:
    r = await client.get("/oapi/v1/call/histories", params={"appId": "a" * 5000})
    assert r.status_code == 414
    assert r.json()["code"] == "too_large"


@sqlite_only
async def test_unexpected_errors_are_500_without_details(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(_: Request) -> JSONResponse:
        raise RuntimeError("secret internal detail")

    api = create_api(settings=Settings(), store=store, bus=InProcessBus(), calls=FakeCalls(),
                     recordings=RecordingSigner(b"k" * 32, "http://media.test", 900),
                     extra_routes=[Route("/boom", boom)])
    transport = httpx.ASGITransport(app=api)
    with caplog.at_level(logging.ERROR, logger="tongdai.api"):
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            r = await c.get("/boom")
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error"
    assert "secret" not in r.text
    assert "secret internal detail" in caplog.text


@sqlite_only
async def test_openapi_document_describes_every_endpoint(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    assert set(paths) >= {"/oapi/v1/voice/auth_token", "/oapi/v1/call/click-to-call/{number}",
                          "/oapi/v1/call/histories", "/oapi/v1/call/play_recording",
                          "/oapi/v1/voice/ws", "/oapi/v1/call/histories/export",
                          "/oapi/v1/devices"}
    hist = paths["/oapi/v1/call/histories"]["get"]
    # The seed's parameters (required), then tongdai's optional filters and cursor.
    assert [p["name"] for p in hist["parameters"]] == [
        "appId", "created_from", "created_to", "limit", "page", "hash",
        "phone", "status_detail", "direction", "device", "did", "external_id", "after"]
    assert {p["name"] for p in hist["parameters"] if p.get("required")} == {
        "appId", "created_from", "created_to", "hash"}
    assert {"200", "400", "401", "429"} <= set(hist["responses"])
    token = paths["/oapi/v1/voice/auth_token"]["post"]
    assert {p["name"] for p in token["parameters"]} == {"x-auth-app-id", "x-auth-app-hash"}
    assert "sipUser" in str(token["requestBody"])
    ws = paths["/oapi/v1/voice/ws"]["get"]["description"]
    for needle in ("4001", "4003", "4004", "4008", "since=", "epoch", "gap", "ping"):
        assert needle in ws
    assert "device_offline" in doc["info"]["description"]
    assert (await client.get("/docs")).status_code == 200


@sqlite_only
async def test_websocket_path_over_plain_http_is_426(client: httpx.AsyncClient) -> None:
    r = await client.get("/oapi/v1/voice/ws")
    assert r.status_code == 426
    assert r.json()["code"] == "upgrade_required"


_TEXT = st.text(max_size=40)
_PARAM = st.one_of(st.none(), _TEXT, st.sampled_from(
    ["2026-11-01", "1793466000", "20", "1", "0", "-1", "2026-11-01T08:00:00+07:00", "%", "\x00"]))


@sqlite_only
@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(app_id=_PARAM, frm=_PARAM, to=_PARAM, limit=_PARAM, page=_PARAM, hash_=_PARAM,
       media=_PARAM)
async def test_fuzzed_queries_never_500(
    client: httpx.AsyncClient, tenants: Tenants, app_id: str | None, frm: str | None,
    to: str | None, limit: str | None, page: str | None, hash_: str | None, media: str | None,
) -> None:
    q = {k: v for k, v in {"appId": app_id, "created_from": frm, "created_to": to,
                           "limit": limit, "page": page, "hash": hash_}.items() if v is not None}
    r = await client.get("/oapi/v1/call/histories", params=q)
    assert r.status_code in {200, 400, 401, 429}, r.text
    assert set(r.json()) >= ({"code", "message"} if r.status_code != 200 else {"data"})
    q2 = {k: v for k, v in {"appId": app_id or tenants.a.app_id, "media": media,
                            "hash": hash_}.items() if v is not None}
    r = await client.get("/oapi/v1/call/play_recording", params=q2)
    assert r.status_code in {400, 401, 404, 429}, r.text


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["sipUser", "sipPassword", "x"]), inner, max_size=3),
    max_leaves=8,
)


@sqlite_only
@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_JSON, raw=st.binary(max_size=60), number=st.text(min_size=1, max_size=30),
       hdr=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=70))
async def test_fuzzed_bodies_never_500(
    client: httpx.AsyncClient, tenants: Tenants, calls: FakeCalls, body: object, raw: bytes,
    number: str, hdr: str,
) -> None:
    calls.registered.add("alice")
    a = tenants.a
    r = await client.post(TOKEN_URL, headers=a.headers(), json=body)
    assert r.status_code in {200, 400, 401, 429}, r.text
    r = await client.post(TOKEN_URL, headers={**a.headers(), "content-type": "application/json"},
                          content=raw)
    assert r.status_code in {400, 401, 429}, r.text
    r = await client.post(TOKEN_URL, headers={"x-auth-app-id": hdr, "x-auth-app-hash": hdr},
                          json=a.creds())
    assert r.status_code in {200, 401, 429}, r.text
    path = "/oapi/v1/call/click-to-call/" + quote(number, safe="")
    r = await client.post(path, headers=a.headers(), json=a.creds())
    assert r.status_code in {200, 400, 401, 404, 405, 429}, r.text
