"""GET /oapi/v1/devices: the app's devices, online or not, in a call or not."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI

from tongdai.bus import Event
from tongdai.store import Registration, Store

from .support import FakeCalls, Tenants, sha, sqlite_only

DEVICES = "/oapi/v1/devices"


def _reg(user: str, contact: str, expires_at: float, ua: str = "Zoiper") -> Registration:
    return Registration(sip_user=user, contact=contact, source_host="192.0.2.5",
                        source_port=5062, transport="udp", expires_at=expires_at,
                        user_agent=ua)


async def test_presence_of_the_apps_devices(
    api: FastAPI, client: httpx.AsyncClient, tenants: Tenants, store: Store, calls: FakeCalls
) -> None:
    a = tenants.a
    now = time.time()
    await store.sync_registrations(
        [_reg("alice", "sip:alice@192.0.2.5:5062", now + 600),
         _reg("alice", "sip:alice@192.0.2.6:5062", now + 3000, ua="Linphone"),
         _reg("anna", "sip:anna@192.0.2.7", now - 5),  # expired
         _reg("bob", "sip:bob@192.0.2.8", now + 600)], [])
    live = api.state.live_calls
    live.handle(Event(type="device.registered", app_id=a.app_id, sip_users=("alice",),
                      ts=now - 100))
    live.handle(Event(type="device.unregistered", app_id=a.app_id, sip_users=("anna",),
                      ts=now - 50))
    live.handle(Event(type="call.ringing", app_id=a.app_id, sip_users=("alice", "anna"),
                      ts=now - 20, data={"call_id": "c1"}))
    live.handle(Event(type="call.answered", app_id=a.app_id, sip_users=("alice", "anna"),
                      ts=now - 10, data={"call_id": "c1"}))
    live.handle(Event(type="call.ringing", app_id=a.app_id, sip_users=("alice",),
                      ts=now - 5, data={"call_id": "c2"}))

    r = await client.get(DEVICES, headers=a.headers())
    assert r.status_code == 200, r.text
    alice, anna = r.json()["data"]  # app B's bob is not listed
    assert alice["sip_user"] == "alice" and alice["extension"] == "101"
    assert alice["online"] is True and alice["bindings"] == 2
    assert alice["registered_until"] == int(now + 3000) and alice["user_agent"] == "Linphone"
    assert alice["online_since"] == int(now - 100) and alice["offline_since"] is None
    assert alice["in_call"] is True and alice["call_state"] == "talking"
    assert alice["calls"] == [{"call_id": "c1", "state": "talking", "since": int(now - 10)},
                              {"call_id": "c2", "state": "ringing", "since": int(now - 5)}]
    assert anna["online"] is False and anna["bindings"] == 0
    assert anna["registered_until"] is None and anna["offline_since"] == int(now - 50)

    live.handle(Event(type="call.ended", app_id=a.app_id, sip_users=("alice", "anna"),
                      ts=now, data={"call_id": "c1"}))
    live.handle(Event(type="call.ended", app_id=a.app_id, sip_users=("alice",),
                      ts=now, data={"call_id": "c2"}))
    alice, anna = (await client.get(DEVICES, headers=a.headers())).json()["data"]
    assert (alice["in_call"], alice["call_state"], alice["calls"]) == (False, "idle", [])
    assert anna["call_state"] == "idle"

    # Online as the call service sees it even before the binding is written behind.
    calls.registered.add("anna")
    anna = (await client.get(DEVICES, headers=a.headers())).json()["data"][1]
    assert anna["online"] is True


@sqlite_only
async def test_a_call_never_heard_to_end_is_forgotten(api: FastAPI) -> None:
    live = api.state.live_calls
    live.handle(Event(type="call.answered", app_id="x", sip_users=("u",), ts=1000.0,
                      data={"call_id": "lost"}))
    assert [c.call_id for c in live.calls_of("x", "u", 1000.0 + live.stale_after)] == ["lost"]
    assert live.calls_of("x", "u", 1001.0 + live.stale_after) == []


@sqlite_only
async def test_presence_needs_the_apps_hash(client: httpx.AsyncClient, tenants: Tenants) -> None:
    a = tenants.a
    for headers in ({}, {"x-auth-app-id": a.app_id},
                    a.headers(hash_=sha(a.app_id, tenants.b.secret))):
        r = await client.get(DEVICES, headers=headers)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"


@sqlite_only
async def test_live_calls_follow_the_bus(api: FastAPI, tenants: Tenants) -> None:
    """Through the real bus subscription the lifespan starts."""
    import asyncio

    bus = api.state.live_calls.bus
    live = api.state.live_calls
    live.start()
    try:
        await asyncio.sleep(0)
        await bus.publish(Event(type="call.ringing", app_id="x", sip_users=("u",),
                                ts=time.time(), data={"call_id": "c9"}))
        for _ in range(100):
            if live.calls_of("x", "u", time.time()):
                break
            await asyncio.sleep(0.01)
        assert [c.call_id for c in live.calls_of("x", "u", time.time())] == ["c9"]
    finally:
        await live.aclose()
