"""The console over HTTP, in-process: sign-in, sessions and their cookies, CSRF on
every POST, the throttle, tenant confinement, the language switch, offline assets."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tongdai.admin.auth import AdminAuth
from tongdai.admin.service import AdminService, Principal
from tongdai.bus import InProcessBus
from tongdai.console.app import MOUNT, Console
from tongdai.console.session import Sessions
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store.sql import SqlStore
from tongdai.throttle import AuthThrottle

TEMPLATES = Path(__file__).resolve().parents[2] / "src/tongdai/console/templates"


@pytest.fixture
def root(store: SqlStore) -> AdminService:
    return AdminService(store=store, settings=Settings(sip_domain="pbx.test"),
                        principal=Principal(actor="cli:test"))


@pytest.fixture
async def client(store: SqlStore) -> AsyncIterator[httpx.AsyncClient]:
    throttle = AuthThrottle(scope="http", address_limit=4, window=60, block=300)
    console = Console(
        store=store, settings=Settings(sip_domain="pbx.test"), bus=InProcessBus(),
        auth=AdminAuth(store=store, throttle=throttle, clock=time.time),
        sessions=Sessions(b"s" * 32), recordings=RecordingSigner(b"r" * 32, "http://x", 60))
    app = Starlette(routes=[Mount(MOUNT, app=console.app())])
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://pbx.test") as c:
        yield c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


async def _sign_in(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    page = await client.get("/console/signin")
    return await client.post("/console/signin", data={"csrf": _csrf(page.text), **form})


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/console/", "/console/devices", "/console/calls", "/console/webhooks"):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/console/signin"


async def test_sign_in_with_a_key_sets_a_strict_httponly_cookie(
        client: httpx.AsyncClient, root: AdminService) -> None:
    key = (await root.create_admin_key())["key"]
    r = await _sign_in(client, key=key)
    assert r.status_code == 303, r.text
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith("td_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; set behind HTTPS
    page = await client.get("/console/")
    assert page.status_code == 200 and "key:" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_a_sign_in_without_its_csrf_token_or_with_a_wrong_key_is_refused(
        client: httpx.AsyncClient, root: AdminService) -> None:
    key = (await root.create_admin_key())["key"]
    assert (await client.post("/console/signin", data={"key": key})).status_code == 403
    r = await _sign_in(client, key=key[:-3] + "abc")
    assert r.status_code == 401 and "wrong" in r.text
    assert "td_console" not in client.cookies


async def test_sign_in_is_throttled(client: httpx.AsyncClient, root: AdminService) -> None:
    await root.add_operator("lan", "lan-password-1")
    for _ in range(4):
        assert (await _sign_in(client, name="lan", password="nope-nope-nope")
                ).status_code == 401
    r = await _sign_in(client, name="lan", password="lan-password-1")
    assert r.status_code == 429


async def test_an_operator_signs_in_and_adds_a_device_with_csrf(
        client: httpx.AsyncClient, root: AdminService, store: SqlStore) -> None:
    app = (await root.create_app("Acme"))["app_id"]
    await root.add_operator("lan", "lan-password-1", app)
    assert (await _sign_in(client, name="lan", password="lan-password-1")).status_code == 303
    page = await client.get("/console/devices")
    token = _csrf(page.text)
    form = {"sip_user": "carol", "password": "carol-secret", "extension": "201"}
    r = await client.post(f"/console/devices?app={app}", data=form)
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = await client.post(f"/console/devices?app={app}", data={**form, "csrf": "0" * 64})
    assert r.status_code == 403
    assert await store.get_device("carol") is None
    r = await client.post(f"/console/devices?app={app}", data={**form, "csrf": token})
    assert r.status_code == 303
    assert (await store.get_device("carol")) is not None
    # The same rules as the CLI, shown by the form.
    r = await client.post(f"/console/devices?app={app}",
                          data={"sip_user": "dan", "password": "short", "csrf": token})
    assert r.status_code == 400 and "at least 8 characters" in r.text
    audit = await root.audit_log(app)
    assert audit[0]["actor"] == "operator:lan" and audit[0]["action"] == "device.added"


async def test_a_tenant_session_cannot_open_another_tenants_pages(
        client: httpx.AsyncClient, root: AdminService) -> None:
    a = (await root.create_app("Acme"))["app_id"]
    b = (await root.create_app("Beta"))["app_id"]
    await root.add_device(b, "bob", "bob-secret-pw")
    key = (await root.create_admin_key(a))["key"]
    await _sign_in(client, key=key)
    for path in ("/console/", "/console/devices", "/console/calls", "/console/webhooks"):
        assert (await client.get(path, params={"app": b})).status_code == 404
        page = await client.get(path)
        assert page.status_code == 200 and b not in page.text
    token = _csrf((await client.get("/console/devices")).text)
    r = await client.post("/console/devices/bob/remove", data={"csrf": token})
    assert r.status_code == 400
    assert [d["sip_user"] for d in await root.list_devices(b)] == ["bob"]


async def test_a_revoked_key_ends_its_sessions(client: httpx.AsyncClient,
                                                root: AdminService) -> None:
    made = await root.create_admin_key()
    await _sign_in(client, key=made["key"])
    assert (await client.get("/console/")).status_code == 200
    await root.revoke_admin_key(made["key_id"])
    assert (await client.get("/console/")).status_code == 303


async def test_the_language_switch(client: httpx.AsyncClient, root: AdminService) -> None:
    await _sign_in(client, key=(await root.create_admin_key())["key"])
    assert "Live calls" in (await client.get("/console/")).text
    r = await client.get("/console/lang", params={"to": "vi", "next": "/console/"})
    assert r.status_code == 303
    assert "Cuộc gọi đang diễn ra" in (await client.get("/console/")).text
    r = await client.get("/console/lang", params={"to": "en", "next": "https://evil.test/"})
    assert r.headers["location"] == "/console/"


async def test_every_asset_is_served_by_tongdai(client: httpx.AsyncClient) -> None:
    for name, kind in (("console.js", "javascript"), ("console.css", "css")):
        r = await client.get(f"/console/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert (await client.get("/console/static/../app.py")).status_code == 404
    for t in TEMPLATES.glob("*.html"):
        assert not re.search(r"(src|href)=\"(https?:)?//", t.read_text()), t


async def test_a_refused_flow_shows_its_error_at_the_node(
        client: httpx.AsyncClient, root: AdminService) -> None:
    app = (await root.create_app("Shop"))["app_id"]
    for user in ("alice", "bob"):
        await root.add_device(app, user, f"{user}-secret")
    await root.add_did(app, "02873001234", "alice")
    await _sign_in(client, key=(await root.create_admin_key())["key"])
    url = f"/console/flows?app={app}&did=02873001234"
    token = _csrf((await client.get(url)).text)
    await _refused_at_the_node_then_saved(client, root, app, url, token)
    assert (await root.flows.get_flow("02873001234"))["version"] == 1


async def test_the_dashboard_shows_the_queues(client: httpx.AsyncClient,
                                              root: AdminService) -> None:
    app = (await root.create_app("Shop"))["app_id"]
    await root.add_device(app, "alice", "alice-secret")
    await root.flows.add_queue(app, "sales", ["alice"])
    await root.flows.pause_agent(app, "alice", True)
    await _sign_in(client, key=(await root.create_admin_key())["key"])
    page = (await client.get("/console/", params={"app": app})).text
    assert 'data-queue="sales"' in page and "alice (paused)" in page
    r = await client.get("/console/queues.json", params={"app": app})
    assert r.json() == [{"name": "sales", "strategy": "ring-all", "waiting": None,
                         "agents": [{"sip_user": "alice", "state": "paused"}]}]


async def test_an_extensions_flow_is_edited_like_a_dids(
        client: httpx.AsyncClient, root: AdminService) -> None:
    from tests.flows.test_document import EXAMPLE

    app = (await root.create_app("Shop"))["app_id"]
    other = (await root.create_app("Other"))["app_id"]
    await root.add_device(app, "alice", "alice-secret", extension="101")
    await root.add_device(app, "bob", "bob-secret")
    await root.add_device(other, "olga", "olga-secret")
    await root.flows.set_extension_flow(other, "301", "device: olga\n")
    await _sign_in(client, key=(await root.create_admin_key(app))["key"])
    page = (await client.get("/console/flows")).text
    assert 'id="extension-open"' in page and 'data-extension="301"' not in page
    url = f"/console/flows?app={app}&extension=300"
    page = (await client.get(url)).text
    assert "Flow of extension 300" in page and 'id="flow-form"' in page
    token = _csrf(page)
    assert (await client.post(url, data={"document": EXAMPLE})).status_code == 403
    await _refused_at_the_node_then_saved(client, root, app, url, token)
    r = await client.post(url, data={"csrf": token, "document": "device: bob\n"})
    assert r.status_code == 200 and 'data-extension="300"' in r.text
    assert (await root.flows.get_extension_flow(app, "300"))["version"] == 2
    assert "device: bob" in (await client.get(url)).text  # the saved document, to edit
    # The service's refusals: a device's own extension, a malformed one.
    for ext, message in (("101", "is device &#39;alice&#39;&#39;s"),
                         ("3x", "extension &#39;3x&#39; must be 2 to 8 digits")):
        r = await client.post(f"/console/flows?app={app}&extension={ext}",
                              data={"csrf": token, "document": "device: bob\n"})
        assert r.status_code == 400 and message in r.text, r.text
    # Another app's extension: as if it did not exist.
    r = await client.post(f"/console/flows?app={other}&extension=301",
                          data={"csrf": token, "document": "hangup: {}\n"})
    assert r.status_code == 404
    assert (await root.flows.get_extension_flow(other, "301"))["version"] == 1
    actions = [(e["action"], e["target"]) for e in await root.audit_log(app)]
    assert actions.count(("flow.set", "ext:300")) == 2
    # In Vietnamese too.
    client.cookies.set("td_lang", "vi", path="/console")
    assert "Kịch bản của số máy lẻ 300" in (await client.get(url)).text


async def _refused_at_the_node_then_saved(client: httpx.AsyncClient, root: AdminService,
                                          app: str, url: str, token: str) -> None:
    """The issue's example flow is refused at its queue node until the queue exists."""
    from tests.flows.test_document import EXAMPLE

    r = await client.post(url, data={"csrf": token, "document": EXAMPLE})
    assert r.status_code == 400
    node = re.search(r'<li data-path="menu\.options\.1\.queue" class="node-error">.*?'
                     r'<span class="node-message">([^<]*)</span>', r.text, re.S)
    assert node and node.group(1) == "no queue &#39;sales&#39; in this app", r.text
    await root.flows.add_queue(app, "sales", ["alice", "bob"])
    r = await client.post(url, data={"csrf": token, "document": EXAMPLE})
    assert r.status_code == 200 and 'id="flow-saved"' in r.text and "node-error" not in r.text
