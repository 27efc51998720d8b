"""Who the client is: X-Forwarded-For counts only from TONGDAI_TRUSTED_PROXIES.

Through the ASGI app in-process, and through the real server (uvicorn on a socket),
where uvicorn used to believe the header from any request of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tongdai.api import AuthThrottle, create_api
from tongdai.bus import InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.pbx.credentials import digest_keys
from tongdai.server import Pbx, serve
from tongdai.settings import Settings, SettingsError, load_settings
from tongdai.store import Store

from .support import FakeCalls, Tenant, Tenants, sqlite_only

URL = "/oapi/v1/voice/auth_token"
LIMIT = 20


def _api(store: Store, trusted: str) -> FastAPI:
    return create_api(
        settings=Settings(trusted_proxies=trusted), store=store, bus=InProcessBus(),
        calls=FakeCalls(), recordings=RecordingSigner(b"k" * 32, "http://media.test", 900),
        throttle=AuthThrottle(scope="http", address_limit=LIMIT, window=60, block=300),
    )


@contextlib.asynccontextmanager
async def _client(app: FastAPI, peer: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


async def _guess(c: httpx.AsyncClient, t: Tenant, times: int, xff: object) -> None:
    for i in range(times):
        forwarded = xff(i) if callable(xff) else xff
        headers = {**t.headers(), **({"x-forwarded-for": forwarded} if forwarded else {})}
        r = await c.post(URL, headers=headers, json={"sipUser": t.user, "sipPassword": "no"})
        assert r.status_code == 401, r.text


async def _right(c: httpx.AsyncClient, t: Tenant, xff: str | None = None) -> int:
    headers = {**t.headers(), **({"x-forwarded-for": xff} if xff else {})}
    return (await c.post(URL, headers=headers, json=t.creds())).status_code


@sqlite_only
async def test_without_trusted_proxies_the_header_is_ignored(
    store: Store, tenants: Tenants
) -> None:
    async with _client(_api(store, ""), "127.0.0.1") as c:
        # A different made-up address on every guess: all count against 127.0.0.1.
        await _guess(c, tenants.a, LIMIT, lambda i: f"198.51.100.{i}")
        assert await _right(c, tenants.a, "203.0.113.99") == 429


@sqlite_only
async def test_a_trusted_proxy_names_the_client(store: Store, tenants: Tenants) -> None:
    app = _api(store, "10.0.0.0/8")
    async with _client(app, "10.1.2.3") as proxy:
        # Proxies append what they saw: the client is the right-most untrusted entry.
        await _guess(proxy, tenants.a, LIMIT, "192.0.2.66, 198.51.100.7, 10.9.9.9")
        assert await _right(proxy, tenants.a, "198.51.100.7") == 429
        assert await _right(proxy, tenants.a, "198.51.100.8") == 200  # another client
        # A client cannot hide behind a forged entry to the left of its own.
        assert await _right(proxy, tenants.a, "203.0.113.5, 198.51.100.7") == 429
    # A peer that is not a trusted proxy is its own client, whatever it forwards.
    async with _client(app, "203.0.113.7") as direct:
        await _guess(direct, tenants.a, LIMIT, lambda i: f"198.51.100.{100 + i}")
        assert await _right(direct, tenants.a, "198.51.100.200") == 429


def test_the_setting_names_a_bad_entry() -> None:
    assert Settings(trusted_proxies=" 10.0.0.5, 192.168.1.0/24 ,").trusted_proxy_list == [
        "10.0.0.5/32", "192.168.1.0/24"]
    with pytest.raises(SettingsError, match=r"TONGDAI_TRUSTED_PROXIES.*'proxy\.lan'"):
        load_settings(trusted_proxies="10.0.0.5,proxy.lan")


# The real server ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, trusted: str) -> AsyncIterator[tuple[Pbx, str]]:
    settings = load_settings(data_dir=tmp_path, sip_port=0, http_port=0,
                             rtp_ports="42300-42399", trusted_proxies=trusted)
    ready: asyncio.Future[Pbx] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, on_ready=ready.set_result, stop=stop))
    try:
        pbx = await asyncio.wait_for(asyncio.shield(ready), 20)
        yield pbx, f"http://127.0.0.1:{pbx.http_port()}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _tenant(pbx: Pbx) -> Tenant:
    app = await pbx.store.create_app("acme")
    await pbx.store.add_device(app.app_id, "alice",
                               digest_keys("alice", pbx.settings.domain, "alice-pw"))
    return Tenant(app=app, user="alice", password="alice-pw")


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
async def test_the_real_server_applies_the_same_rule(tmp_path: Path, trusted: str) -> None:
    async with _server(tmp_path, trusted) as (pbx, base), httpx.AsyncClient(
        base_url=base
    ) as c:
        t = await _tenant(pbx)
        await _guess(c, t, LIMIT, lambda i: f"198.51.100.{i}")
        if trusted:  # each guess came from another client: none of them is blocked
            assert await _right(c, t, "198.51.100.250") == 200
            await _guess(c, t, LIMIT, "198.51.100.77")
            assert await _right(c, t, "198.51.100.77") == 429
        else:  # the header is ignored: 127.0.0.1 made twenty guesses and is blocked
            assert await _right(c, t, "198.51.100.250") == 429
