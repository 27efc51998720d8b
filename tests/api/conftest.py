from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tongdai.api import AuthThrottle, create_api
from tongdai.bus import InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.pbx.credentials import digest_keys
from tongdai.settings import Settings
from tongdai.store import Store

from .support import REALM, FakeCalls, Tenant, Tenants


@pytest.fixture
async def tenants(store: Store) -> Tenants:
    a = await store.create_app("Acme CRM")
    b = await store.create_app("Beta CRM")
    await store.add_device(a.app_id, "alice",
                           digest_keys("alice", REALM, "alice-pw"), extension="101")
    await store.add_device(a.app_id, "anna", digest_keys("anna", REALM, "anna-pw"), extension="102")
    await store.add_device(b.app_id, "bob", digest_keys("bob", REALM, "bob-pw"), extension="101")
    # App A reaches every outside number; app B has no trunk at all.
    await store.add_trunk(a.app_id, "carrier", host="198.51.100.1")
    return Tenants(a=Tenant(app=a, user="alice", password="alice-pw"),
                   b=Tenant(app=b, user="bob", password="bob-pw"))


@pytest.fixture
def settings() -> Settings:
    return Settings(timezone="Asia/Ho_Chi_Minh", token_ttl=3600, ws_ping_interval=20.0,
                    ws_retain_events=50, ws_queue_limit=20)


@pytest.fixture
def calls() -> FakeCalls:
    return FakeCalls()


@pytest.fixture
def recordings() -> RecordingSigner:
    return RecordingSigner(b"k" * 32, "http://media.test", 900)


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
def throttle() -> AuthThrottle:
    return AuthThrottle(scope="http", address_limit=20, window=60, block=300)


@pytest.fixture
def api(
    settings: Settings, store: Store, bus: InProcessBus, calls: FakeCalls,
    recordings: RecordingSigner, throttle: AuthThrottle,
) -> FastAPI:
    return create_api(settings=settings, store=store, bus=bus, calls=calls,
                      recordings=recordings, throttle=throttle)


@pytest.fixture
async def client(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c
