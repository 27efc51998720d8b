"""The call-signal websocket against a real uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.store.support import revoke_tokens
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tongdai.api import create_api
from tongdai.bus import Event, InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store import Store, TokenRec

from .support import FakeCalls, Tenants, running, sha, sqlite_only

VOICE_WS_PATH = "/oapi/v1/voice/ws"


@pytest.fixture
def ws_settings() -> Settings:
    return Settings(ws_ping_interval=30.0, ws_retain_events=50, ws_queue_limit=20)


@pytest.fixture
async def base(
    ws_settings: Settings, store: Store, bus: InProcessBus, calls: FakeCalls,
    recordings: RecordingSigner,
) -> AsyncIterator[str]:
    app = create_api(settings=ws_settings, store=store, bus=bus, calls=calls,
                     recordings=recordings)
    async with running(app, VOICE_WS_PATH) as url:
        yield url


async def token_for(store: Store, app_id: str, sip_user: str, ttl: float = 3600) -> str:
    token = secrets.token_urlsafe(32)
    await store.add_token(TokenRec(token_hash=sha(token), app_id=app_id, sip_user=sip_user,
                                   expires_at=time.time() + ttl))
    return token


def open_ws(url: str, **kw: Any) -> connect:
    return connect(url, compression=None, proxy=None, open_timeout=5, **kw)


async def recv(ws: ClientConnection, *, skip_pings: bool = True) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if not (skip_pings and msg["type"] == "ping"):
            return msg


async def close_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as exc:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    assert exc.value.rcvd is not None
    return exc.value.rcvd.code


def call_event(type_: str, call_id: str, *users: str, app: str, **data: Any) -> Event:
    return Event(type=type_, app_id=app, sip_users=users, ts=time.time(),
                 data={"call_id": call_id, "direction": "from_ab",
                       "caller": {"number": "101", "type": "user", "username": users[0]},
                       "callee": {"number": "0912345678", "type": "realnumber"},
                       "did_number": None, **data})


async def settle() -> None:
    # Let the hub's task move published events into the mailboxes.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_hello_then_live_events_of_the_device_only(
    base: str, store: Store, bus: InProcessBus, tenants: Tenants
) -> None:
    a, b = tenants.a, tenants.b
    token = await token_for(store, a.app_id, "alice")
    async with open_ws(f"{base}?token={token}") as ws:
        hello = await recv(ws)
        assert hello["type"] == "hello" and hello["seq"] == 0
        assert hello["sip_user"] == "alice"
        assert abs(hello["expire"] - (time.time() + 3600)) < 5
        assert isinstance(hello["epoch"], str) and hello["epoch"]
        await bus.publish(call_event("call.ringing", "c1", "alice", app=a.app_id))
        await bus.publish(call_event("call.ringing", "c9", "anna", app=a.app_id))  # not ours
        await bus.publish(call_event("call.ringing", "c8", "alice", app=b.app_id))  # other app
        await bus.publish(call_event("call.answered", "c1", "alice", app=a.app_id))
        await bus.publish(call_event("call.ended", "c1", "alice", app=a.app_id,
                                     status_detail="SUCCESS"))
        await bus.publish(call_event("call.ended", "c1", "alice", app=a.app_id,
                                     status_detail="SUCCESS"))  # a duplicate
        await bus.publish(Event(type="device.unregistered", app_id=a.app_id,
                                sip_users=("alice",), ts=time.time(),
                                data={"sip_user": "alice"}))
        got = [await recv(ws) for _ in range(4)]
        assert [(m["type"], m["seq"]) for m in got] == [
            ("call.ringing", 1), ("call.answered", 2), ("call.ended", 3),
            ("device.unregistered", 4)]
        assert got[2]["data"]["status_detail"] == "SUCCESS"
        assert got[0]["data"]["callee"] == {"number": "0912345678", "type": "realnumber"}
        assert all(m["data"].get("call_id", "c1") == "c1" for m in got)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)  # nothing else: no second ended


async def test_reconnect_with_since_replays_what_was_missed(
    base: str, store: Store, bus: InProcessBus, tenants: Tenants
) -> None:
    a = tenants.a
    token = await token_for(store, a.app_id, "alice")
    async with open_ws(f"{base}?token={token}") as ws:
        epoch = (await recv(ws))["epoch"]
        await bus.publish(call_event("call.ringing", "c1", "alice", app=a.app_id))
        assert (await recv(ws))["seq"] == 1
    # While disconnected: a whole call.
    for t in ("call.ringing", "call.answered", "call.ended"):
        await bus.publish(call_event(t, "c2", "alice", app=a.app_id))
    await settle()
    async with open_ws(f"{base}?token={token}&since=1&epoch={epoch}") as ws:
        hello = await recv(ws)
        assert (hello["type"], hello["seq"], hello["epoch"]) == ("hello", 4, epoch)
        missed = [await recv(ws) for _ in range(3)]
        assert [(m["type"], m["seq"], m["data"]["call_id"]) for m in missed] == [
            ("call.ringing", 2, "c2"), ("call.answered", 3, "c2"), ("call.ended", 4, "c2")]
        await bus.publish(call_event("call.ringing", "c3", "alice", app=a.app_id))
        live = await recv(ws)
        assert (live["seq"], live["data"]["call_id"]) == (5, "c3")
    # Another epoch's numbers: everything retained, from 1.
    async with open_ws(f"{base}?token={token}&since=3&epoch=0badc0de") as ws:
        assert (await recv(ws))["seq"] == 5
        assert [(await recv(ws))["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


@sqlite_only
async def test_gap_is_announced_when_the_window_has_moved_on(
    base: str, store: Store, bus: InProcessBus, tenants: Tenants
) -> None:
    a = tenants.a
    token = await token_for(store, a.app_id, "alice")
    for i in range(60):  # the window keeps 50
        await bus.publish(Event(type="device.registered", app_id=a.app_id,
                                sip_users=("alice",), ts=time.time(), data={"n": i}))
    await asyncio.sleep(0.05)
    async with open_ws(f"{base}?token={token}&since=4") as ws:
        assert (await recv(ws))["seq"] == 60
        assert await recv(ws) == {"type": "gap", "from": 5, "to": 10}
        assert [(await recv(ws))["seq"] for _ in range(50)] == list(range(11, 61))


@sqlite_only
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", 4001),
        ("?token=", 4001),
        ("?token=not-a-real-token", 4003),
        ("?token=" + "x" * 300, 4003),
        ("?token=TOKEN&since=-1", 4000),
        ("?token=TOKEN&since=abc", 4000),
        ("?token=TOKEN&since=1&epoch=NOT-HEX", 4000),
    ],
)
async def test_refusals_have_documented_codes(
    base: str, store: Store, tenants: Tenants, query: str, code: int
) -> None:
    token = await token_for(store, tenants.a.app_id, "alice")
    async with open_ws(base + query.replace("TOKEN", token)) as ws:
        assert await close_code(ws) == code


async def test_expired_and_revoked_tokens(
    base: str, store: Store, tenants: Tenants
) -> None:
    a = tenants.a
    expired = await token_for(store, a.app_id, "alice", ttl=-1)
    async with open_ws(f"{base}?token={expired}") as ws:
        assert await close_code(ws) == 4004
    revoked = await token_for(store, a.app_id, "alice")
    await revoke_tokens(store, a.app_id, "alice")
    async with open_ws(f"{base}?token={revoked}") as ws:
        assert await close_code(ws) == 4003


@sqlite_only
async def test_token_of_a_removed_device_is_refused(
    base: str, store: Store, tenants: Tenants
) -> None:
    token = await token_for(store, tenants.a.app_id, "anna")
    await store.remove_device("anna", app_id=tenants.a.app_id)
    async with open_ws(f"{base}?token={token}") as ws:
        assert await close_code(ws) == 4003


@sqlite_only
async def test_open_socket_closes_when_its_token_expires(
    base: str, store: Store, tenants: Tenants
) -> None:
    token = await token_for(store, tenants.a.app_id, "alice", ttl=0.8)
    async with open_ws(f"{base}?token={token}") as ws:
        assert (await recv(ws))["type"] == "hello"
        t0 = time.monotonic()
        assert await close_code(ws) == 4004
        assert time.monotonic() - t0 < 3


async def test_pings_and_revocation_while_connected(
    store: Store, bus: InProcessBus, calls: FakeCalls, recordings: RecordingSigner,
    tenants: Tenants,
) -> None:
    settings = Settings(ws_ping_interval=0.2)
    app = create_api(settings=settings, store=store, bus=bus, calls=calls, recordings=recordings)
    async with running(app, VOICE_WS_PATH) as base:
        token = await token_for(store, tenants.a.app_id, "alice")
        async with open_ws(f"{base}?token={token}") as ws:
            assert (await recv(ws))["ping_interval"] == 0.2
            ping = await recv(ws, skip_pings=False)
            assert ping["type"] == "ping" and "seq" not in ping
            await ws.send(json.dumps({"type": "pong"}))  # welcome, ignored
            await ws.send("anything")
            assert (await recv(ws, skip_pings=False))["type"] == "ping"
            await revoke_tokens(store, tenants.a.app_id, "alice")
            assert await close_code(ws) == 4003


@sqlite_only
async def test_slow_client_is_dropped_without_hurting_others(
    base: str, store: Store, bus: InProcessBus, tenants: Tenants
) -> None:
    a = tenants.a
    token = await token_for(store, a.app_id, "alice")
    n = 300
    async with (open_ws(f"{base}?token={token}", max_queue=1) as slow,
                open_ws(f"{base}?token={token}") as fast):
        await recv(slow)
        await recv(fast)
        fast_got: list[int] = []

        async def read_fast() -> None:
            while len(fast_got) < n:
                fast_got.append((await recv(fast))["seq"])

        reader = asyncio.create_task(read_fast())
        for i in range(n):
            # Incompressible 64 KiB payloads fill the socket buffers of the idle client.
            await bus.publish(Event(type="device.registered", app_id=a.app_id,
                                    sip_users=("alice",), ts=time.time(),
                                    data={"n": i, "pad": os.urandom(32 * 1024).hex()}))
            await asyncio.sleep(0.002)
        await asyncio.wait_for(reader, 20)
        assert fast_got == list(range(1, n + 1))
        # The slow client gets what was already on its way, then the close code.
        assert await close_code(slow) == 4008
