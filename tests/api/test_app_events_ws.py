"""The app-wide event stream (/oapi/v1/events/ws) on a real uvicorn, on SQLite and
PostgreSQL: tenant isolation, bindings, device filter, since= replay, gaps, refusals."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tongdai.api import create_api
from tongdai.api.events_ws import EVENTS_WS_PATH, app_event_routes
from tongdai.appstream import AppLogBus, SqlAppLog
from tongdai.appstream.service import AppStream
from tongdai.bus import Event, InProcessBus
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store import Store
from tongdai.throttle import AuthThrottle

from .support import FakeCalls, Tenant, Tenants, running, sha


class Stream:
    def __init__(self, store: Store, retain: int = 10_000) -> None:
        self.log = SqlAppLog(store=store, retain=retain)  # type: ignore[arg-type]
        self.stream = AppStream(log=self.log, queue_limit=2000)
        self.bus = AppLogBus(InProcessBus(), self.log)

    async def publish(self, app_id: str, kind: str, *devices: str, **data: Any) -> None:
        await self.bus.publish(Event(type=kind, app_id=app_id, sip_users=devices, ts=1.0,
                                     data=data))
        await self.log.flushed()


def make_app(store: Store, stream: Stream, calls: FakeCalls,
             ping_interval: float = 30.0) -> FastAPI:
    throttle = AuthThrottle(scope="http", address_limit=20, window=60, block=300)
    routes = app_event_routes(config=store, hub=stream.stream.hub, throttle=throttle,
                              clock=time.time, ping_interval=ping_interval)
    return create_api(settings=Settings(), store=store, bus=InProcessBus(), calls=calls,
                      recordings=RecordingSigner(b"k" * 32, "http://media.test", 900),
                      extra_routes=routes, throttle=throttle)


@pytest.fixture
async def env(store: Store, calls: FakeCalls) -> AsyncIterator[tuple[Stream, str]]:
    stream = Stream(store)
    await stream.log.start()
    try:
        async with running(make_app(store, stream, calls), EVENTS_WS_PATH) as url:
            yield stream, url
    finally:
        await stream.stream.stop()


def creds(t: Tenant) -> dict[str, str]:
    return {"x-auth-app-id": t.app_id, "x-auth-app-hash": sha(t.app_id, t.app.app_secret.reveal())}


def open_ws(url: str, t: Tenant | None, query: str = "") -> connect:
    return connect(url + query, compression=None, proxy=None, open_timeout=5,
                   additional_headers=creds(t) if t is not None else None)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg["type"] != "ping":
            return msg


async def quiet(ws: ClientConnection) -> None:
    """Nothing more arrives (within a short wait)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), 0.3)


async def test_each_app_sees_only_its_own_events_numbered_per_app(
        env: tuple[Stream, str], tenants: Tenants) -> None:
    stream, url = env
    a, b = tenants.a, tenants.b
    async with open_ws(url, a) as wa, open_ws(url, b) as wb:
        assert (await recv(wa))["type"] == "hello"
        hello_b = await recv(wb)
        assert hello_b == {"type": "hello", "app_id": b.app_id, "seq": 0, "events": ["*"],
                           "devices": None, "ping_interval": 30.0}
        await stream.publish(a.app_id, "call.ringing", "alice", call_id="c1")
        await stream.publish(b.app_id, "device.registered", "bob")
        await stream.publish(a.app_id, "call.ended", "alice", "anna", call_id="c1")
        got_a = [await recv(wa), await recv(wa)]
        got_b = await recv(wb)
        assert [(m["seq"], m["type"]) for m in got_a] == [(1, "call.ringing"), (2, "call.ended")]
        assert got_a[1]["devices"] == ["alice", "anna"] and got_a[1]["data"] == {"call_id": "c1"}
        assert (got_b["seq"], got_b["type"], got_b["devices"]) == (1, "device.registered", ["bob"])
        await quiet(wa)
        await quiet(wb)


async def test_bindings_and_device_filter(env: tuple[Stream, str], tenants: Tenants) -> None:
    stream, url = env
    a = tenants.a
    async with (open_ws(url, a, "?events=call.*") as calls_ws,
                open_ws(url, a, "?events=device.*,call.ended&device=anna") as anna_ws):
        assert (await recv(calls_ws))["events"] == ["call.*"]
        hello = await recv(anna_ws)
        assert (hello["events"], hello["devices"]) == (["device.*", "call.ended"], ["anna"])
        await stream.publish(a.app_id, "device.registered", "alice")
        await stream.publish(a.app_id, "device.registered", "anna")
        await stream.publish(a.app_id, "call.ringing", "anna", call_id="c1")
        await stream.publish(a.app_id, "call.ended", "anna", call_id="c1")
        assert [(m["seq"], m["type"]) for m in (await recv(calls_ws), await recv(calls_ws))] \
            == [(3, "call.ringing"), (4, "call.ended")]
        assert [(m["seq"], m["type"]) for m in (await recv(anna_ws), await recv(anna_ws))] \
            == [(2, "device.registered"), (4, "call.ended")]
        await quiet(calls_ws)
        await quiet(anna_ws)


async def test_since_replays_what_was_missed_in_order_then_live(
        env: tuple[Stream, str], tenants: Tenants) -> None:
    stream, url = env
    a = tenants.a
    async with open_ws(url, a) as ws:
        await recv(ws)
        await stream.publish(a.app_id, "call.ringing", "alice", call_id="c1")
        assert (await recv(ws))["seq"] == 1
    for n in range(2, 6):  # while nobody is connected
        await stream.publish(a.app_id, "call.answered", "alice", call_id=f"c{n}")
    async with open_ws(url, a, "?since=1") as ws:
        hello = await recv(ws)
        assert hello["seq"] == 5
        assert [(await recv(ws))["data"]["call_id"] for _ in range(4)] == ["c2", "c3", "c4", "c5"]
        await stream.publish(a.app_id, "call.ended", "alice", call_id="c6")
        live = await recv(ws)
        assert (live["seq"], live["data"]["call_id"]) == (6, "c6")
        await quiet(ws)
    async with open_ws(url, a, "?since=6") as ws:  # up to date: nothing replayed
        assert (await recv(ws))["seq"] == 6
        await quiet(ws)


async def test_since_older_than_the_retained_events_says_gap(
        store: Store, calls: FakeCalls, tenants: Tenants) -> None:
    stream = Stream(store, retain=10)
    await stream.log.start()
    a = tenants.a
    try:
        for n in range(300):
            stream.log.append(Event(type="call.ringing", app_id=a.app_id, sip_users=("alice",),
                                    ts=1.0, data={"n": n}))
        await stream.log.flushed()
        first, last = await stream.log.bounds(a.app_id)
        assert last == 300 and 1 < first <= 291
        async with running(make_app(store, stream, calls), EVENTS_WS_PATH) as url, \
                open_ws(url, a, "?since=0") as ws:
            assert (await recv(ws))["seq"] == 300
            assert await recv(ws) == {"type": "gap", "from": 1, "to": first - 1}
            assert [(await recv(ws))["seq"] for _ in range(first, 301)] == \
                list(range(first, 301))
    finally:
        await stream.stream.stop()


@pytest.mark.parametrize(("query", "who", "code"), [
    ("", None, 4001),
    ("?since=abc", "a", 4000),
    ("?events=call..x", "a", 4000),
    ("?device=" + "x" * 200, "a", 4000),
    ("", "wrong", 4003),
])
async def test_refusals_close_with_the_device_websocket_codes(
        env: tuple[Stream, str], tenants: Tenants, query: str, who: str | None,
        code: int) -> None:
    _, url = env
    headers = None
    if who == "a":
        headers = creds(tenants.a)
    elif who == "wrong":
        headers = {"x-auth-app-id": tenants.a.app_id,
                   "x-auth-app-hash": sha(tenants.a.app_id, tenants.b.app.app_secret.reveal())}
    async with connect(url + query, compression=None, proxy=None, open_timeout=5,
                       additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as err:
            await asyncio.wait_for(ws.recv(), 5)
        assert err.value.rcvd is not None and err.value.rcvd.code == code


async def test_query_credentials_for_clients_without_headers(
        env: tuple[Stream, str], tenants: Tenants) -> None:
    _, url = env
    a = tenants.a
    q = f"?appId={a.app_id}&hash={sha(a.app_id, a.app.app_secret.reveal())}"
    async with open_ws(url, None, q) as ws:
        assert (await recv(ws))["app_id"] == a.app_id


async def test_plain_http_on_the_path_is_426(store: Store, calls: FakeCalls) -> None:
    stream = Stream(store)
    transport = httpx.ASGITransport(app=make_app(store, stream, calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        r = await c.get(EVENTS_WS_PATH)
    assert r.status_code == 426 and r.json()["code"] == "upgrade_required"


async def test_docs_describe_the_protocol(store: Store, calls: FakeCalls) -> None:
    stream = Stream(store)
    transport = httpx.ASGITransport(app=make_app(store, stream, calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        doc = (await c.get("/openapi.json")).json()
    op = doc["paths"][EVENTS_WS_PATH]["get"]
    assert set(op["responses"]) == {"101", "426"}
    text = op["description"]
    for needle in ("x-auth-app-hash", "events=", "device=", "since=", "batch=1", "hello",
                   "gap", "ping", "seq", "external_id", "TONGDAI_BUS_URL", "`4000`",
                   "`4001`", "`4003`", "`4008`", "`4029`", "`1001`", "`1011`"):
        assert needle in text, needle


async def test_batch_mode_carries_several_events_per_message_one_per_line(
        env: tuple[Stream, str], tenants: Tenants) -> None:
    stream, url = env
    a = tenants.a
    for n in range(5):
        stream.log.append(Event(type="call.ringing", app_id=a.app_id, sip_users=("alice",),
                                ts=1.0, data={"n": n}))
    await stream.log.flushed()
    async with open_ws(url, a, "?since=0&batch=1") as ws:
        assert (await recv(ws))["seq"] == 5
        replay = str(await asyncio.wait_for(ws.recv(), 5))  # what was missed: one message
        assert [json.loads(line)["seq"] for line in replay.split("\n")] == [1, 2, 3, 4, 5]
        for n in range(5, 8):
            stream.log.append(Event(type="call.ended", app_id=a.app_id, sip_users=("alice",),
                                    ts=1.0, data={"n": n}))
        await stream.log.flushed()
        live: list[int] = []
        while len(live) < 3:
            text = str(await asyncio.wait_for(ws.recv(), 5))
            live += [json.loads(line)["seq"] for line in text.split("\n")]
        assert live == [6, 7, 8]


async def test_a_rotated_secret_ends_the_stream_at_the_next_ping(
        store: Store, calls: FakeCalls, tenants: Tenants) -> None:
    stream = Stream(store)
    await stream.log.start()
    try:
        app = make_app(store, stream, calls, ping_interval=0.2)
        async with running(app, EVENTS_WS_PATH) as url, open_ws(url, tenants.a) as ws:
            await recv(ws)
            await store.rotate_secret(tenants.a.app_id)
            with pytest.raises(ConnectionClosed) as err:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert err.value.rcvd is not None and err.value.rcvd.code == 4003
    finally:
        await stream.stream.stop()
