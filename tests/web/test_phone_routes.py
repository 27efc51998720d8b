"""The softphone page's routes: the page, its config, its vendored files, 404 for others."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from tongdai.web import STATIC, phone_routes


async def _client(ws: int | None = 5066) -> httpx.AsyncClient:
    app = Starlette(routes=phone_routes(domain="pbx.example", ws_port=ws, wss_port=None))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_page_config_and_files() -> None:
    async with await _client() as c:
        page = await c.get("/phone")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="/phone/jssip.min.js">' in page.text
        assert (await c.get("/phone/config.json")).json() == {
            "domain": "pbx.example", "ws_port": 5066, "wss_port": None}
        js = await c.get("/phone/jssip.min.js")
        assert js.status_code == 200 and "JsSIP" in js.text
        assert "MIT" in (await c.get("/phone/JSSIP-LICENSE.txt")).text
        assert (await c.get("/phone/phone.js")).status_code == 200
        missing = await c.get("/phone/../settings.py")
        assert missing.status_code == 404
        other = await c.get("/phone/secret.txt")
        assert other.status_code == 404 and other.json()["code"] == "not_found"


async def test_config_says_when_websocket_is_off() -> None:
    async with await _client(ws=None) as c:
        assert (await c.get("/phone/config.json")).json()["ws_port"] is None


def test_vendored_library_is_packaged() -> None:
    assert (STATIC / "jssip.min.js").stat().st_size > 100_000
