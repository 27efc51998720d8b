"""Per-app request limits: 429 app_rate_limited with Retry-After, per app, after auth."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tongdai.api import AuthThrottle, create_api
from tongdai.api.errors import ApiError
from tongdai.api.ratelimit import AppRateLimit
from tongdai.bus import InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store import Store

from .support import FakeCalls, Tenant, Tenants, sha, sqlite_only

DEVICES = "/oapi/v1/devices"


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def limited(store: Store, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_app_rate=0.5, api_app_burst=3)
    api = create_api(settings=settings, store=store, bus=InProcessBus(), calls=FakeCalls(),
                     recordings=RecordingSigner(b"k" * 32, "http://media.test", 900),
                     throttle=AuthThrottle(scope="http", address_limit=20), clock=clock)
    transport = httpx.ASGITransport(app=api, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


def _headers(t: Tenant, *, wrong: bool = False) -> dict[str, str]:
    return {"x-auth-app-id": t.app_id,
            "x-auth-app-hash": sha(t.app_id, "nope" if wrong else t.secret)}


@sqlite_only
async def test_an_app_over_its_limit_gets_429_with_retry_after(
    limited: httpx.AsyncClient, tenants: Tenants, clock: Clock
) -> None:
    a, b = tenants.a, tenants.b
    for _ in range(3):  # the burst
        assert (await limited.get(DEVICES, headers=_headers(a))).status_code == 200
    r = await limited.get(DEVICES, headers=_headers(a))
    assert r.status_code == 429
    assert r.json()["code"] == "app_rate_limited" and r.json()["message"]
    assert r.headers["retry-after"] == "2"  # one request per 2 s at 0.5/s
    # Other apps keep their own allowance.
    assert (await limited.get(DEVICES, headers=_headers(b))).status_code == 200
    # Histories counts against the same allowance.
    q = {"appId": a.app_id, "created_from": "2026-11-01", "created_to": "2026-11-01",
         "hash": sha(a.app_id, "2026-11-01", "2026-11-01", "", "", a.secret)}
    assert (await limited.get("/oapi/v1/call/histories", params=q)).status_code == 429
    clock.now += 2.0
    assert (await limited.get(DEVICES, headers=_headers(a))).status_code == 200
    assert (await limited.get(DEVICES, headers=_headers(a))).status_code == 429


@sqlite_only
async def test_wrong_hashes_do_not_spend_an_apps_allowance(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    a = tenants.a
    for _ in range(5):
        r = await limited.get(DEVICES, headers=_headers(a, wrong=True))
        assert r.status_code == 401
    for _ in range(3):
        assert (await limited.get(DEVICES, headers=_headers(a))).status_code == 200


def test_bucket_refills_and_a_zero_rate_turns_it_off() -> None:
    lim = AppRateLimit(rate=10, burst=2)
    lim.take("a", 0.0)
    lim.take("a", 0.0)
    with pytest.raises(ApiError) as exc:
        lim.take("a", 0.0)
    assert (exc.value.status, exc.value.headers) == (429, {"Retry-After": "1"})
    lim.take("a", 0.1)  # one token back after 1/rate
    lim.take("a", 5.0)
    lim.take("a", 4.0)  # a clock stepping back gives nothing and breaks nothing
    off = AppRateLimit(rate=0, burst=1)
    for _ in range(100):
        off.take("a", 0.0)


def test_limits_are_settings() -> None:
    s = Settings()
    assert (s.api_app_rate, s.api_app_burst) == (20.0, 100)
    # The failure throttle's numbers were settings already.
    assert (s.api_auth_fail_limit, s.api_auth_fail_window, s.api_auth_block_seconds) == (
        20, 60, 300)
