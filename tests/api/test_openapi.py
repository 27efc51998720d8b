"""The API's own documentation tells the truth and works without internet."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tongdai.api import CLOSE_CODES
from tongdai.api.docs import ASSET_PATH, ASSETS
from tongdai.api.errors import CODES

from .support import sqlite_only

ROOT = Path(__file__).resolve().parents[2]
# Where tongdai's HTTP server answers errors: the Open API and the recording URLs.
SOURCES = [*sorted((ROOT / "src/tongdai/api").glob("*.py")), ROOT / "src/tongdai/media/serve.py"]
OPEN_API_MD = ROOT / "docs/open-api.md"

# A status then a code, as every error is built: ApiError(400, "x", ...),
# _error(404, "x", ...), _send_error(send, 413, "x", ...), {404: ("x", ...)}; and
# literal bodies {"code": "x", ...}.
_STATUS_CODE = re.compile(r"\b[1-5]\d\d\s*[,:]\s*\(?\s*\"([a-z][a-z_]+)\"")
_CODE_KEY = re.compile(r"\"code\"\s*:\s*\"([a-z][a-z_]+)\"")


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        found |= set(_STATUS_CODE.findall(text)) | set(_CODE_KEY.findall(text))
    return found


def test_the_scan_finds_the_codes_it_should() -> None:
    # Guard against a scan that silently finds nothing.
    assert {"invalid_parameter", "invalid_number", "no_route", "device_offline",
            "unauthorized", "rate_limited", "too_large", "internal_error",
            "upgrade_required", "recording_not_found"} <= codes_in_source()


def test_every_code_the_server_emits_is_registered_and_in_the_doc() -> None:
    emitted = codes_in_source()
    assert emitted <= set(CODES), emitted - set(CODES)
    doc = OPEN_API_MD.read_text()
    assert not {c for c in CODES if f"`{c}`" not in doc}, "codes missing from docs/open-api.md"
    assert not {c for c in CLOSE_CODES if f"`{c}`" not in doc}, "close codes missing"


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    result: dict[str, Any] = r.json()
    return result


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


@sqlite_only
async def test_no_422_is_documented(doc: dict[str, Any]) -> None:
    # Validation failures are answered 400 invalid_parameter, never 422.
    for path, method, op in _operations(doc):
        assert "422" not in op["responses"], (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "ValidationError" not in doc["components"]["schemas"]


@sqlite_only
async def test_every_documented_error_is_one_tongdai_sends(doc: dict[str, Any]) -> None:
    statuses = {str(s) for code in CODES.values() for s in code[0]}
    for path, method, op in _operations(doc):
        for status, response in op["responses"].items():
            if status in ("101", "200"):
                continue
            assert status in statuses, (method, path, status)
            assert response["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorBody"), (method, path, status)
    c2c = doc["paths"]["/oapi/v1/call/click-to-call/{number}"]["post"]["responses"]["400"]
    for code in ("invalid_parameter", "invalid_number", "no_route", "device_offline"):
        assert f"`{code}`" in c2c["description"]
    token = doc["paths"]["/oapi/v1/voice/auth_token"]["post"]["responses"]["400"]
    assert "`no_route`" not in token["description"]
    for code in CODES:
        assert f"`{code}`" in doc["info"]["description"]


@sqlite_only
async def test_required_parameters_are_marked_required(doc: dict[str, Any]) -> None:
    def params(path: str, method: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in doc["paths"][path][method]["parameters"]}

    expected = {
        ("/oapi/v1/voice/auth_token", "post"): {"x-auth-app-id", "x-auth-app-hash"},
        ("/oapi/v1/call/click-to-call/{number}", "post"): {
            "number", "x-auth-app-id", "x-auth-app-hash"},
        ("/oapi/v1/call/histories", "get"): {"appId", "created_from", "created_to", "hash"},
        ("/oapi/v1/call/play_recording", "get"): {"appId", "media", "hash"},
    }
    for (path, method), names in expected.items():
        got = params(path, method)
        assert {n for n, p in got.items() if p.get("required")} == names, path
        for name in names:
            assert got[name]["schema"]["type"] == "string", (path, name)
            assert "anyOf" not in got[name]["schema"]
    hist = params("/oapi/v1/call/histories", "get")
    assert not hist["limit"].get("required") and not hist["page"].get("required")
    for path in ("/oapi/v1/voice/auth_token", "/oapi/v1/call/click-to-call/{number}"):
        assert doc["paths"][path]["post"]["requestBody"]["required"] is True


@sqlite_only
async def test_the_websocket_426_is_not_a_success(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/oapi/v1/voice/ws"]["get"]["responses"]
    assert set(responses) == {"101", "426"}
    assert "Successful" not in responses["426"]["description"]
    assert "upgrade_required" in responses["426"]["description"]
    assert "Switching Protocols" in responses["101"]["description"]


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


@sqlite_only
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_doc_pages_load_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    r = await client.get(page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    parser = _Urls()
    parser.feed(r.text)
    assert parser.urls, "the page references no assets"
    for u in parser.urls:
        assert u.startswith("/") and not u.startswith("//"), u
    # Nothing else points outside either (CDNs, Google Fonts, the validator badge).
    assert "http://" not in r.text and "https://" not in r.text
    assert "/openapi.json" in r.text
    for u in parser.urls:
        if u.startswith(ASSET_PATH):
            asset = await client.get(u)
            assert asset.status_code == 200, u
            assert asset.headers["content-type"] == ASSETS[u.rsplit("/", 1)[1]]


@sqlite_only
async def test_assets_are_served_with_their_type(client: httpx.AsyncClient) -> None:
    for name, ctype in ASSETS.items():
        r = await client.get(f"{ASSET_PATH}/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == ctype
        assert len(r.content) > 1000
    assert (await client.get(f"{ASSET_PATH}/swagger-ui-bundle.js")).text.lstrip().startswith(
        "/*!")
    for bad in ("nope.js", "..%2Fdocs.py", "%2E%2E%2F%2E%2E%2F__init__.py", "__init__.py"):
        r = await client.get(f"{ASSET_PATH}/{bad}")
        assert r.status_code == 404, bad
        assert r.json()["code"] == "not_found"
