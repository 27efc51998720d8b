"""Test doubles and helpers shared by the Open API tests."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from tongdai.pbx.protocol import DeviceOffline
from tongdai.store import AppRec, Cdr

REALM = "tongdai.test"


def sha(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()


@asynccontextmanager
async def running(app: FastAPI, path: str) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:<ephemeral>; yield the ws URL of ``path``."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class FakeCalls:
    """CallControl without a PBX: a set of registered devices and a log of calls started.

    It refuses an unregistered device as the real one does; ``refuse`` makes it refuse
    the number as the real dial plan would (the app's trunks changed meanwhile).
    """

    def __init__(self) -> None:
        self.registered: set[str] = set()
        self.started: list[dict[str, Any]] = []
        self.offline_on_call = False  # the device unregisters between check and call
        self.refuse: Exception | None = None

    def is_registered(self, sip_user: str) -> bool:
        return sip_user in self.registered

    async def click_to_call(
        self, *, app_id: str, sip_user: str, number: str, external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        if sip_user not in self.registered or self.offline_on_call:
            raise DeviceOffline(sip_user)
        if self.refuse is not None:
            raise self.refuse
        call_id = f"c2c-{len(self.started) + 1}"
        started: dict[str, Any] = {
            "app_id": app_id, "sip_user": sip_user, "number": number, "call_id": call_id}
        # Only what was given, so a call without correlation looks as it always did.
        if external_id is not None:
            started["external_id"] = external_id
        if metadata is not None:
            started["metadata"] = metadata
        self.started.append(started)
        return call_id


@dataclass
class Tenant:
    app: AppRec
    user: str
    password: str

    @property
    def app_id(self) -> str:
        return self.app.app_id

    @property
    def secret(self) -> str:
        return self.app.app_secret.reveal()

    def headers(self, *, hash_: str | None = None) -> dict[str, str]:
        return {"x-auth-app-id": self.app_id,
                "x-auth-app-hash": hash_ if hash_ is not None else sha(self.app_id, self.secret)}

    def creds(self) -> dict[str, str]:
        return {"sipUser": self.user, "sipPassword": self.password}


@dataclass
class Tenants:
    a: Tenant
    b: Tenant


def cdr(app_id: str, started_at: float, call_id: str, **kw: Any) -> Cdr:
    fields: dict[str, Any] = {
        "caller": {"number": "101", "type": "user", "username": "alice"},
        "callee": {"number": "0912345678", "type": "realnumber"},
        "klass": "trunking", "did_number": None, "direction": "from_ab",
        "status_detail": "SUCCESS", "duration_seconds": 50,
        "unix_timestamp": int(started_at), "billing_seconds": 43, "recording": "",
        "started_at": started_at, "ended_at": started_at + 50,
    }
    fields.update(kw)
    return Cdr(call_id=call_id, app_id=app_id, **fields)


# For tests whose subject does not depend on the database: run them on SQLite only
# (the store's own semantics are covered on both backends by the other tests).
sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
