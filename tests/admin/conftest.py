from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tongdai.admin.api import MOUNT, create_admin_api
from tongdai.admin.auth import AdminAuth
from tongdai.admin.service import AdminService, Principal
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore
from tongdai.throttle import AuthThrottle

LIVE: list[dict[str, Any]] = []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", sip_domain="pbx.test",
                    webhook_allow_private=True)


@pytest.fixture
def throttle() -> AuthThrottle:
    return AuthThrottle(scope="http", address_limit=5, window=60, block=300)


@pytest.fixture
def root(store: SqlStore, settings: Settings) -> AdminService:
    """The service as the CLI uses it: every app."""
    return AdminService(store=store, settings=settings, principal=Principal(actor="cli:test"))


@pytest.fixture
def live() -> list[dict[str, Any]]:
    return []


@pytest.fixture
async def client(store: SqlStore, settings: Settings, throttle: AuthThrottle,
                 live: list[dict[str, Any]]) -> AsyncIterator[httpx.AsyncClient]:
    import time

    auth = AdminAuth(store=store, throttle=throttle, clock=time.time)
    api = create_admin_api(store=store, settings=settings, auth=auth, live_calls=lambda: live)
    app = Starlette(routes=[Mount(MOUNT, app=api)])
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx.test") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
