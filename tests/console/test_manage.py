"""The console's administration pages (apps, DIDs, trunks, queues, agents, prompts,
webhooks, deliveries, admin keys, operators, audit log): each listed, created and
removed through its form, every POST refused without the session's CSRF token, a
tenant's session confined to its app."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.console.test_pages import _csrf, _sign_in

from tongdai.admin.auth import AdminAuth
from tongdai.admin.service import AdminService, Principal
from tongdai.bus import InProcessBus
from tongdai.console.app import MOUNT, Console
from tongdai.console.session import Sessions
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore
from tongdai.throttle import AuthThrottle
from tongdai.webhooks.store import Attempt, NewDelivery


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Prompts go to the test's own directory; webhooks may target loopback.
    return Settings(sip_domain="pbx.test", data_dir=tmp_path, webhook_allow_private=True)


@pytest.fixture
def root(store: SqlStore, settings: Settings) -> AdminService:
    return AdminService(store=store, settings=settings, principal=Principal(actor="cli:test"))


@pytest.fixture
async def client(store: SqlStore, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    throttle = AuthThrottle(scope="http", address_limit=4, window=60, block=300)
    console = Console(
        store=store, settings=settings, bus=InProcessBus(),
        auth=AdminAuth(store=store, throttle=throttle, clock=time.time),
        sessions=Sessions(b"s" * 32), recordings=RecordingSigner(b"r" * 32, "http://x", 60))
    app = Starlette(routes=[Mount(MOUNT, app=console.app())])
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx.test") as c:
        yield c


def _rows(html: str, kind: str) -> list[str]:
    table = re.search(rf'<table id="rows-{kind}".*?</table>', html, re.S)
    assert table, html
    return re.findall(r'<tr data-key="([^"]*)"', table.group(0))


def _once(html: str, key: str) -> str:
    m = re.search(rf'<code data-once="{key}">([^<]*)</code>', html)
    assert m, html
    return m.group(1)


async def _admin(client: httpx.AsyncClient, root: AdminService) -> tuple[str, str]:
    """Signed in with a key of every app; (an app, the CSRF token)."""
    app = (await root.create_app("Shop"))["app_id"]
    await _sign_in(client, key=(await root.create_admin_key())["key"])
    return app, _csrf((await client.get("/console/manage/dids", params={"app": app})).text)


async def _post(client: httpx.AsyncClient, path: str, app: str | None,
                **form: str) -> httpx.Response:
    return await client.post(f"/console/manage/{path}",
                             params={"app": app} if app else None, data=form)


async def test_every_post_needs_the_csrf_token(client: httpx.AsyncClient,
                                               root: AdminService, store: SqlStore) -> None:
    app, token = await _admin(client, root)
    await root.add_device(app, "alice", "alice-secret")
    for path, form in (("dids", {"number": "02873001234", "sip_user": "alice"}),
                       ("apps", {"name": "Other"}), ("operators", {"name": "lan",
                        "password": "lan-password-1"}), ("keys", {"label": "x"}),
                       ("dids/remove", {"key": "02873001234"})):
        for bad in ({}, {"csrf": "0" * 64}):
            r = await _post(client, path, app, **form, **bad)
            assert r.status_code == 403 and r.json()["code"] == "csrf_failed", path
    assert await root.list_dids(app) == [] and len(await root.list_apps()) == 1
    assert await root.list_operators() == []
    assert token


async def test_dids_are_added_listed_and_removed(client: httpx.AsyncClient,
                                                 root: AdminService) -> None:
    app, token = await _admin(client, root)
    await root.add_device(app, "alice", "alice-secret")
    r = await _post(client, "dids", app, csrf=token, number="028 7300 1234",
                    sip_user="alice")
    assert r.status_code == 303 and r.headers["location"] == f"/console/manage/dids?app={app}"
    page = (await client.get("/console/manage/dids", params={"app": app})).text
    assert _rows(page, "dids") == ["02873001234"]
    # The service's rules, shown on the form: an unknown device.
    r = await _post(client, "dids", app, csrf=token, number="02873009999", sip_user="nobody")
    assert r.status_code == 400 and 'id="resource-error"' in r.text
    assert 'value="02873009999"' in r.text  # what was typed is kept
    r = await _post(client, "dids/remove", app, csrf=token, key="02873001234")
    assert r.status_code == 303 and await root.list_dids(app) == []
    assert (await root.audit_log(app))[0]["action"] == "did.removed"


async def test_an_app_is_created_with_its_secret_shown_once_and_deleted(
        client: httpx.AsyncClient, root: AdminService, store: SqlStore) -> None:
    app, token = await _admin(client, root)
    r = await _post(client, "apps", app, csrf=token, name="Bakery")
    assert r.status_code == 200 and 'id="shown-once"' in r.text
    new, secret = _once(r.text, "app_id"), _once(r.text, "app_secret")
    made = await store.get_app(new)
    assert made is not None and made.app_secret.reveal() == secret
    page = (await client.get("/console/manage/apps", params={"app": app})).text
    assert set(_rows(page, "apps")) == {app, new} and secret not in page
    r = await _post(client, "apps/rotate", app, csrf=token, key=new)
    assert r.status_code == 200 and _once(r.text, "app_id") == new
    rotated = await store.get_app(new)
    assert rotated is not None and rotated.app_secret.reveal() == _once(r.text, "app_secret")
    assert _once(r.text, "app_secret") != secret
    r = await _post(client, "apps/remove", app, csrf=token, key=new)
    assert r.status_code == 303 and await store.get_app(new) is None


async def test_trunks_are_added_changed_and_removed(client: httpx.AsyncClient,
                                                    root: AdminService) -> None:
    app, token = await _admin(client, root)
    r = await _post(client, "trunks", app, csrf=token, name="viettel", host="sip.example.vn",
                    port="5060", transport="udp", username="shop", password="trunk-pass",
                    prefix="", strip="0", match="09", priority="5")
    assert r.status_code == 303, r.text
    r = await _post(client, "trunks", app, csrf=token, name="viettel", match="09,03",
                    priority="1")
    assert r.status_code == 303, r.text
    [t] = await root.list_trunks(app)
    assert t["match"] == ["09", "03"] and t["priority"] == 1 and t["has_password"]
    page = (await client.get("/console/manage/trunks", params={"app": app})).text
    assert _rows(page, "trunks") == ["viettel"] and "trunk-pass" not in page
    r = await _post(client, "trunks", app, csrf=token, name="bad", host="h", port="x")
    assert r.status_code == 400 and "port must be a whole number" in r.text
    assert (await _post(client, "trunks/remove", app, csrf=token, key="viettel")
            ).status_code == 303
    assert await root.list_trunks(app) == []


async def test_queues_are_edited_and_agents_paused(client: httpx.AsyncClient,
                                                   root: AdminService, store: SqlStore) -> None:
    app, token = await _admin(client, root)
    for user in ("alice", "bob"):
        await root.add_device(app, user, f"{user}-secret")
    r = await _post(client, "queues", app, csrf=token, name="sales", agents="alice",
                    strategy="", max_wait="", max_length="", ring_timeout="", wrapup="")
    assert r.status_code == 303, r.text
    r = await _post(client, "queues", app, csrf=token, name="sales", agents="alice, bob",
                    strategy="round-robin", max_wait="120", max_length="5")
    assert r.status_code == 303, r.text
    [q] = await root.flows.list_queues(app)
    assert (q["agents"], q["strategy"], q["max_wait"], q["max_length"]) == (
        ["alice", "bob"], "round-robin", 120, 5)
    r = await _post(client, "queues", app, csrf=token, name="sales", strategy="random")
    assert r.status_code == 400 and "strategy" in r.text
    page = (await client.get("/console/manage/agents", params={"app": app})).text
    assert _rows(page, "agents") == ["alice", "bob"]
    assert (await _post(client, "agents/pause", app, csrf=token, key="bob")
            ).status_code == 303
    assert await store.paused_agents(app) == {"bob"}
    page = (await client.get("/console/manage/agents", params={"app": app})).text
    assert 'data-action="unpause"' in page
    await _post(client, "agents/unpause", app, csrf=token, key="bob")
    assert not await store.paused_agents(app)
    assert (await _post(client, "queues/remove", app, csrf=token, key="sales")
            ).status_code == 303
    assert await root.flows.list_queues(app) == []


async def test_a_prompt_is_added_by_text_and_removed(client: httpx.AsyncClient,
                                                     root: AdminService) -> None:
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    app, token = await _admin(client, root)
    r = await _post(client, "prompts", app, csrf=token, name="shop-hello",
                    text="Xin chào quý khách", lang="vi")
    assert r.status_code == 303, r.text
    page = (await client.get("/console/manage/prompts", params={"app": app})).text
    assert "shop-hello" in _rows(page, "prompts")
    assert (await _post(client, "prompts/remove", app, csrf=token, key="shop-hello")
            ).status_code == 303
    assert "shop-hello" not in [p["name"] for p in await root.prompts.list(app)]


async def test_webhooks_are_added_disabled_and_removed_and_a_delivery_redelivered(
        client: httpx.AsyncClient, root: AdminService, store: SqlStore) -> None:
    app, token = await _admin(client, root)
    page = (await client.get("/console/webhooks", params={"app": app})).text
    assert f'href="/console/manage/hooks?app={app}"' in page
    r = await _post(client, "hooks", app, csrf=token, url="http://127.0.0.1:9/in",
                    events="")
    assert r.status_code == 200 and 'id="shown-once"' in r.text
    hook, secret = _once(r.text, "webhook_id"), _once(r.text, "secret")
    assert secret and secret not in (await client.get(
        "/console/manage/hooks", params={"app": app})).text
    r = await _post(client, "hooks", app, csrf=token, url="ftp://127.0.0.1/x")
    assert r.status_code == 400 and 'id="resource-error"' in r.text
    assert (await _post(client, "hooks/disable", app, csrf=token, key=hook)
            ).status_code == 303
    assert not (await root.list_webhooks(app))[0]["enabled"]
    assert (await _post(client, "hooks/enable", app, csrf=token, key=hook)
            ).status_code == 303
    assert (await root.list_webhooks(app))[0]["enabled"]
    r = await _post(client, "deliveries/redeliver", app, csrf=token, key="nope")
    assert r.status_code == 400 and "does not exist" in r.text
    # One delivered event, sent again from its row.
    await store.add_deliveries([NewDelivery(
        delivery_id=f"whd_{hook}_1", endpoint_id=hook, event_id="ev1",
        event_type="call.ended", order_key="c1", body="{}", created_at=1000.0)], node="n1")
    [(d, _)] = await store.pending_deliveries(node="n1", now=2000.0, limit=10)
    await store.record_attempts([Attempt(seq=d.seq, ok=True, at=2000.0)], [])
    page = (await client.get("/console/manage/deliveries", params={"app": app})).text
    assert _rows(page, "deliveries") == [d.delivery_id] and "delivered" in page
    assert (await _post(client, "deliveries/redeliver", app, csrf=token, key=d.delivery_id)
            ).status_code == 303
    [again] = await root.list_deliveries(app)
    assert again["status"] == "pending"
    assert (await root.audit_log(app))[0]["action"] == "webhook.redelivered"
    assert (await _post(client, "hooks/remove", app, csrf=token, key=hook)
            ).status_code == 303
    assert await root.list_webhooks(app) == []


async def test_keys_are_shown_once_and_revoked_and_operators_added_and_removed(
        client: httpx.AsyncClient, root: AdminService, store: SqlStore) -> None:
    app, token = await _admin(client, root)
    r = await _post(client, "keys", app, csrf=token, label="tenant", scope="app")
    assert r.status_code == 200
    key_id, key = _once(r.text, "key_id"), _once(r.text, "key")
    [made] = [k for k in await root.list_admin_keys() if k["key_id"] == key_id]
    assert made["app_id"] == app and made["label"] == "tenant"
    assert key not in (await client.get("/console/manage/keys", params={"app": app})).text
    assert (await _post(client, "keys/revoke", app, csrf=token, key=key_id)
            ).status_code == 303
    assert [k["revoked"] for k in await root.list_admin_keys() if k["key_id"] == key_id] \
        == [True]
    r = await _post(client, "operators", app, csrf=token, name="lan",
                    password="lan-password-1", scope="all")
    assert r.status_code == 303
    assert [(o["name"], o["app_id"]) for o in await root.list_operators()] == [("lan", None)]
    page = (await client.get("/console/manage/operators", params={"app": app})).text
    assert _rows(page, "operators") == ["lan"] and "lan-password-1" not in page
    assert (await _post(client, "operators/remove", app, csrf=token, key="lan")
            ).status_code == 303
    assert await root.list_operators() == []
    page = (await client.get("/console/manage/audit", params={"app": app})).text
    assert "operator.removed" in page and "admin_key.revoked" in page


async def test_a_tenant_session_is_confined_to_its_app(client: httpx.AsyncClient,
                                                       root: AdminService) -> None:
    a = (await root.create_app("Acme"))["app_id"]
    b = (await root.create_app("Beta"))["app_id"]
    await root.add_device(b, "bob", "bob-secret-pw")
    await root.add_did(b, "02873005555", "bob")
    await root.add_operator("other", "other-password", b)
    await _sign_in(client, key=(await root.create_admin_key(a))["key"])
    page = (await client.get("/console/manage/dids")).text
    token = _csrf(page)
    assert 'id="nav-apps"' not in page and 'id="nav-dids"' in page
    assert (await client.get("/console/manage/apps")).status_code == 404
    assert (await _post(client, "apps", None, csrf=token, name="Mine")).status_code == 404
    for kind in ("settings", "dids", "trunks", "queues", "agents", "prompts", "hooks", "deliveries",
                 "keys", "operators", "audit", "extflows"):
        assert (await client.get(f"/console/manage/{kind}", params={"app": b})
                ).status_code == 404, kind
        page = (await client.get(f"/console/manage/{kind}")).text
        assert b not in page and "02873005555" not in page and "other" not in \
            _rows(page, kind), kind
    r = await _post(client, "dids/remove", None, csrf=token, key="02873005555")
    assert r.status_code == 400
    assert [d["number"] for d in await root.list_dids(b)] == ["02873005555"]
    r = await _post(client, "operators/remove", None, csrf=token, key="other")
    assert r.status_code == 400 and len(await root.list_operators()) == 1
    # A key of every app is not the tenant's to make.
    r = await _post(client, "keys", None, csrf=token, label="x", scope="all")
    assert r.status_code == 400
    r = await _post(client, "keys", None, csrf=token, label="mine", scope="app")
    assert r.status_code == 200 and all(
        k["app_id"] == a for k in await root.list_admin_keys() if k["label"] == "mine")


def _wav(seconds: float) -> bytes:
    import io
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8000 * 2 * math.pi
                                                                         * 440)))
                               for i in range(int(8000 * seconds))))
    return out.getvalue()


async def test_a_prompt_is_uploaded_as_an_audio_file(client: httpx.AsyncClient,
                                                     root: AdminService) -> None:
    app, token = await _admin(client, root)
    audio = _wav(2.0)  # 32 kB: more than the 16 KiB every other body is allowed
    url = f"/console/manage/prompts/upload?app={app}"
    files = {"file": ("hello.wav", audio, "audio/wav")}
    r = await client.post(url, data={"name": "shop-hello"}, files=files)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await client.post(url, data={"name": "shop-hello", "csrf": token}, files=files)
    assert r.status_code == 303, r.text
    [made] = [p for p in await root.prompts.list(app) if p["name"] == "shop-hello"]
    assert made["source"] == "app" and made["seconds"] == 2.0
    r = await client.post(url, data={"name": "noise", "csrf": token},
                          files={"file": ("x.wav", b"not audio at all", "audio/wav")})
    assert r.status_code == 400 and 'id="resource-error"' in r.text
    r = await client.post(url, data={"name": "x", "csrf": token}, headers={})
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"
    # Bounded: a body over the cap is refused before it is parsed.
    from tongdai.console.upload import MAX_UPLOAD

    r = await client.post(url, data={"name": "big", "csrf": token},
                          files={"file": ("big.wav", b"\0" * (MAX_UPLOAD + 1), "audio/wav")})
    assert r.status_code == 413 and r.json()["code"] == "too_large"


async def test_the_http_guard_allows_the_larger_body_on_the_upload_path_only() -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from tongdai.api.guard import Guard
    from tongdai.console.upload import MAX_UPLOAD, UPLOAD_PATH

    async def size(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    inner = Starlette(routes=[Route(UPLOAD_PATH, size, methods=["POST"]),
                              Route("/console/manage/dids", size, methods=["POST"])])
    app = Guard(inner, max_body=16 * 1024, larger={UPLOAD_PATH: MAX_UPLOAD})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://pbx.test") as c:
        body = b"x" * (100 * 1024)
        assert (await c.post(UPLOAD_PATH, content=body)).text == str(len(body))
        r = await c.post("/console/manage/dids", content=body)
        assert r.status_code == 413 and r.json()["code"] == "too_large"
        r = await c.post(UPLOAD_PATH, content=b"x" * (MAX_UPLOAD + 1))
        assert r.status_code == 413


async def test_the_apps_settings_are_changed_by_a_tenant(client: httpx.AsyncClient,
                                                         root: AdminService) -> None:
    a = (await root.create_app("Acme"))["app_id"]
    await root.add_device(a, "alice", "alice-secret")
    await root.add_did(a, "02873001234", "alice")
    await _sign_in(client, key=(await root.create_admin_key(a))["key"])
    token = _csrf((await client.get("/console/manage/settings")).text)
    r = await _post(client, "settings", None, csrf=token, record_calls="yes",
                    default_did="02873001234")
    assert r.status_code == 303, r.text
    got = await root.get_app(a)
    assert got["record_calls"] is True and got["default_did"] == "02873001234"
    r = await _post(client, "settings", None, csrf=token, record_calls="no", default_did="")
    assert r.status_code == 303
    got = await root.get_app(a)
    assert got["record_calls"] is False and got["default_did"] == "02873001234"
    r = await _post(client, "settings", None, csrf=token, default_did="0999")
    assert r.status_code == 400 and 'id="resource-error"' in r.text


async def test_registrations_passwords_and_flows_have_their_pages(
        client: httpx.AsyncClient, root: AdminService, store: SqlStore) -> None:
    from tongdai.store.records import Registration

    app, token = await _admin(client, root)
    other = (await root.create_app("Other"))["app_id"]
    await root.add_device(app, "alice", "alice-secret")
    await root.add_device(other, "olga", "olga-secret")
    await store.sync_registrations([
        Registration(sip_user=user, contact=f"sip:{user}@192.0.2.7:5062",
                     source_host="192.0.2.7", source_port=5062, transport="udp",
                     expires_at=time.time() + 300, user_agent=f"{user}-phone/1")
        for user in ("alice", "olga")], [])
    page = (await client.get("/console/manage/registrations", params={"app": app})).text
    assert _rows(page, "registrations") == ["alice"] and "alice-phone/1" in page
    assert "olga" not in page

    # tongdai device passwd, for the page's app only; the password is never shown.
    before = await store.get_device("alice")
    r = await _post(client, "passwords", app, csrf=token, sip_user="alice",
                    password="alice-new-secret")
    assert r.status_code == 303, r.text
    after = await store.get_device("alice")
    assert before is not None and after is not None and after.ha1_md5 != before.ha1_md5
    r = await _post(client, "passwords", app, csrf=token, sip_user="olga",
                    password="olga-new-secret-1")
    assert r.status_code == 400 and "does not exist" in r.text
    olga = await store.get_device("olga")
    assert olga is not None and "olga-new-secret" not in (await client.get(
        "/console/manage/passwords", params={"app": app})).text
    r = await _post(client, "passwords", app, csrf=token, sip_user="alice", password="x")
    assert r.status_code == 400  # the CLI's minimum length

    # tongdai flow remove
    await root.add_did(app, "02873001234", "alice")
    await root.flows.set_flow(app, "02873001234", "device: alice\n")
    page = (await client.get("/console/manage/flowlist", params={"app": app})).text
    assert _rows(page, "flowlist") == ["02873001234"]
    r = await _post(client, "flowlist/remove", app, csrf=token, key="02873001234")
    assert r.status_code == 303 and await root.flows.list_flows(app) == []
    assert (await root.audit_log(app))[0]["action"] == "flow.removed"


async def test_flows_by_extension_are_listed_and_removed(client: httpx.AsyncClient,
                                                         root: AdminService) -> None:
    app, token = await _admin(client, root)
    other = (await root.create_app("Other"))["app_id"]
    await root.add_device(app, "alice", "alice-secret")
    await root.add_device(other, "olga", "olga-secret")
    await root.flows.set_extension_flow(app, "300", "device: alice\n")
    await root.flows.set_extension_flow(other, "300", "device: olga\n")
    page = (await client.get("/console/manage/extflows", params={"app": app})).text
    assert _rows(page, "extflows") == ["300"] and "extension 300" in page
    for bad in ({}, {"csrf": "0" * 64}):
        r = await _post(client, "extflows/remove", app, key="300", **bad)
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await _post(client, "extflows/remove", app, csrf=token, key="300")
    assert r.status_code == 303, r.text
    assert await root.flows.list_extension_flows(app) == []
    assert [f["app_id"] for f in await root.flows.list_extension_flows()] == [other]
    audit = (await root.audit_log(app))[0]
    assert (audit["action"], audit["target"]) == ("flow.removed", "ext:300")
    r = await _post(client, "extflows/remove", app, csrf=token, key="300")
    assert r.status_code == 400 and "extension 300 has no flow" in r.text

    # A tenant's session: its own app's only; the other app's flow stays.
    await _sign_in(client, key=(await root.create_admin_key(app))["key"])
    assert (await client.get("/console/manage/extflows", params={"app": other})
            ).status_code == 404
    page = (await client.get("/console/manage/extflows")).text
    assert _rows(page, "extflows") == []
    r = await _post(client, "extflows/remove", other, csrf=_csrf(page), key="300")
    assert r.status_code == 404
    assert [f["app_id"] for f in await root.flows.list_extension_flows()] == [other]
