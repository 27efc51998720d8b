"""The admin REST API: every endpoint, its errors, tenant isolation and the audit log,
on real SQLite and PostgreSQL stores."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tongdai.admin.service import AdminService

from .conftest import bearer

V1 = "/admin/v1"


async def _tenants(root: AdminService) -> tuple[str, str]:
    a = (await root.create_app("Acme"))["app_id"]
    b = (await root.create_app("Beta"))["app_id"]
    await root.add_device(a, "alice", "alice-secret", extension="101")
    await root.add_device(b, "bob", "bob-secret-pw", extension="101")
    return a, b


def _err(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"], body


async def test_no_key_a_wrong_key_and_a_revoked_key_are_refused(
        client: httpx.AsyncClient, root: AdminService) -> None:
    _err(await client.get(f"{V1}/apps"), 401, "unauthorized")
    _err(await client.get(f"{V1}/apps", headers={"Authorization": "Basic x"}), 401,
         "unauthorized")
    key = (await root.create_admin_key())["key"]
    assert (await client.get(f"{V1}/apps", headers=bearer(key))).status_code == 200
    _err(await client.get(f"{V1}/apps", headers=bearer(key[:-2] + "zz")), 401, "unauthorized")
    _err(await client.get(f"{V1}/apps", headers=bearer("tdk_nosuchkey123_" + "a" * 32)), 401,
         "unauthorized")
    await root.revoke_admin_key(key.split("_")[1])
    _err(await client.get(f"{V1}/apps", headers=bearer(key)), 401, "unauthorized")


async def test_failed_keys_from_one_address_are_throttled(
        client: httpx.AsyncClient, root: AdminService) -> None:
    key = (await root.create_admin_key())["key"]
    for _ in range(5):
        _err(await client.get(f"{V1}/me", headers=bearer("tdk_aaaaaaaaaaaa_" + "b" * 32)), 401,
             "unauthorized")
    r = await client.get(f"{V1}/me", headers=bearer(key))  # even the right key now
    _err(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) > 0


async def test_every_endpoint_with_a_key_of_every_app(
        client: httpx.AsyncClient, root: AdminService, live: list[dict[str, Any]]) -> None:
    h = bearer((await root.create_admin_key(label="ops"))["key"])
    assert (await client.get(f"{V1}/me", headers=h)).json()["app_id"] is None
    r = await client.post(f"{V1}/apps", json={"name": "Gamma"}, headers=h)
    assert r.status_code == 201 and r.json()["app_secret"]
    app = r.json()["app_id"]
    assert [a["name"] for a in (await client.get(f"{V1}/apps", headers=h)).json()] == ["Gamma"]
    assert (await client.get(f"{V1}/apps/{app}", headers=h)).json()["record_calls"] is True
    _err(await client.get(f"{V1}/apps/nosuchapp", headers=h), 404, "not_found")
    r = await client.patch(f"{V1}/apps/{app}", json={"record_calls": False}, headers=h)
    assert r.json()["record_calls"] is False
    old = r.json()
    assert (await client.post(f"{V1}/apps/{app}/rotate-secret", headers=h)).json()["app_secret"]
    assert "app_secret" not in old

    # Devices: the CLI's rules (password length, names) and its conflicts.
    _err(await client.post(f"{V1}/devices", headers=h, json={
        "app_id": app, "sip_user": "carol", "password": "short"}), 400, "invalid_parameter")
    _err(await client.post(f"{V1}/devices", headers=h, json={
        "app_id": app, "sip_user": "0901234567", "password": "long-enough"}), 400,
        "invalid_parameter")
    _err(await client.post(f"{V1}/devices", headers=h, json={"app_id": app}), 400,
         "invalid_parameter")
    r = await client.post(f"{V1}/devices", headers=h, json={
        "app_id": app, "sip_user": "carol", "password": "carol-secret", "extension": "201",
        "display_name": "Carol"})
    assert r.status_code == 201, r.text
    assert r.json() == {"sip_user": "carol", "app_id": app, "display_name": "Carol",
                        "extension": "201", "realm": "pbx.test"}
    _err(await client.post(f"{V1}/devices", headers=h, json={
        "app_id": app, "sip_user": "carol", "password": "carol-secret"}), 409, "conflict")
    devs = (await client.get(f"{V1}/devices", params={"app_id": app}, headers=h)).json()
    assert [(d["sip_user"], d["online"], d["bindings"]) for d in devs] == [("carol", False, 0)]
    assert (await client.get(f"{V1}/devices/carol", headers=h)).json()["extension"] == "201"
    r = await client.put(f"{V1}/devices/carol/password", json={"password": "new-password"},
                         headers=h)
    assert r.status_code == 200

    # DIDs and trunks.
    r = await client.post(f"{V1}/dids", headers=h, json={
        "app_id": app, "number": "+84 28 7301 9555", "sip_user": "carol"})
    assert r.status_code == 201 and r.json()["number"] == "02873019555"
    assert len((await client.get(f"{V1}/dids", headers=h)).json()) == 1
    _err(await client.delete(f"{V1}/devices/carol", headers=h), 409, "conflict")
    r = await client.post(f"{V1}/trunks", headers=h, json={
        "app_id": app, "name": "viettel", "host": "203.0.113.10", "password": "p",
        "username": "u", "match": ["09", "03"]})
    assert r.status_code == 201 and r.json()["has_password"] is True
    assert "password" not in r.json()
    _err(await client.post(f"{V1}/trunks", headers=h, json={
        "app_id": app, "name": "bad", "host": "203.0.113.10", "match": ["x9"]}), 400,
        "invalid_parameter")
    r = await client.patch(f"{V1}/trunks/{app}/viettel", json={"priority": 5}, headers=h)
    assert r.json()["priority"] == 5 and r.json()["match"] == ["09", "03"]
    _err(await client.patch(f"{V1}/trunks/{app}/viettel", json={}, headers=h), 400,
         "invalid_parameter")
    assert [t["name"] for t in (await client.get(f"{V1}/trunks", headers=h)).json()] == [
        "viettel"]
    assert (await client.delete(f"{V1}/trunks/{app}/viettel", headers=h)).status_code == 200
    _err(await client.delete(f"{V1}/trunks/{app}/viettel", headers=h), 404, "not_found")

    # Webhooks and deliveries.
    _err(await client.post(f"{V1}/webhooks", headers=h, json={
        "app_id": app, "url": "ftp://x", "events": "*"}), 400, "invalid_parameter")
    r = await client.post(f"{V1}/webhooks", headers=h, json={
        "app_id": app, "url": "http://127.0.0.1:9/hook", "events": "call.*"})
    assert r.status_code == 201 and r.json()["secret"]
    wid = r.json()["webhook_id"]
    assert (await client.post(f"{V1}/webhooks/{wid}/disable", headers=h)).json()[
        "enabled"] is False
    assert (await client.post(f"{V1}/webhooks/{wid}/enable", headers=h)).json()[
        "enabled"] is True
    assert [w["webhook_id"] for w in (await client.get(f"{V1}/webhooks", headers=h)).json()
            ] == [wid]
    assert (await client.get(f"{V1}/deliveries", params={"webhook_id": wid},
                             headers=h)).json() == []
    _err(await client.get(f"{V1}/deliveries", params={"limit": 0}, headers=h), 400,
         "invalid_parameter")
    _err(await client.post(f"{V1}/deliveries/nope/redeliver", headers=h), 404, "not_found")
    assert (await client.delete(f"{V1}/webhooks/{wid}", headers=h)).status_code == 200

    # What is happening.
    assert (await client.get(f"{V1}/registrations", headers=h)).json() == []
    live.append({"call_id": "c1", "app_id": app, "state": "talking"})
    live.append({"call_id": "c2", "app_id": "other", "state": "ringing"})
    assert [c["call_id"] for c in (await client.get(
        f"{V1}/calls", params={"app_id": app}, headers=h)).json()] == ["c1"]
    assert (await client.get(f"{V1}/cdrs", params={"app_id": app}, headers=h)).json() == {
        "total": 0, "cdrs": []}
    _err(await client.get(f"{V1}/cdrs", headers=h), 400, "invalid_parameter")

    # Keys.
    r = await client.post(f"{V1}/admin-keys", json={"app_id": app, "label": "crm"}, headers=h)
    assert r.status_code == 201 and r.json()["key"].startswith("tdk_")
    kid = r.json()["key_id"]
    assert kid in [k["key_id"] for k in (await client.get(f"{V1}/admin-keys", headers=h)).json()]
    assert (await client.delete(f"{V1}/admin-keys/{kid}", headers=h)).json()["revoked"] is True

    # Operators.
    _err(await client.post(f"{V1}/operators", json={"name": "lan", "password": "short"},
                           headers=h), 400, "invalid_parameter")
    r = await client.post(f"{V1}/operators", json={"name": "lan", "password": "long-password",
                                                   "app_id": app}, headers=h)
    assert r.status_code == 201 and r.json()["app_id"] == app and "password" not in r.json()
    _err(await client.post(f"{V1}/operators", json={"name": "lan", "password": "long-password"},
                           headers=h), 409, "conflict")
    assert [o["name"] for o in (await client.get(f"{V1}/operators", headers=h)).json()] == [
        "lan"]
    assert (await client.delete(f"{V1}/operators/lan", headers=h)).status_code == 200

    # DIDs and devices go; then the app.
    assert (await client.delete(f"{V1}/dids/02873019555", headers=h)).status_code == 200
    assert (await client.delete(f"{V1}/devices/carol", headers=h)).status_code == 200
    assert (await client.delete(f"{V1}/apps/{app}", headers=h)).json() == {"deleted": app}

    # Every change is in the audit log, newest first, naming the key.
    me = (await client.get(f"{V1}/me", headers=h)).json()["actor"]
    audit = (await client.get(f"{V1}/audit", headers=h)).json()
    assert audit[-1]["actor"] == "cli:test" and audit[-1]["action"] == "admin_key.created"
    audit = audit[:-1]
    assert {e["actor"] for e in audit} == {me}
    actions = [e["action"] for e in audit]
    assert actions[0] == "app.deleted" and actions[-1] == "app.created"
    for expected in ("device.added", "device.password_set", "did.added", "trunk.added",
                     "trunk.updated", "trunk.removed", "webhook.added", "webhook.disabled",
                     "admin_key.created", "admin_key.revoked", "app.secret_rotated",
                     "operator.added", "operator.removed"):
        assert expected in actions
    assert all("password" not in str(e["detail"]) for e in audit)


async def test_a_tenant_key_never_sees_another_tenant(
        client: httpx.AsyncClient, root: AdminService, live: list[dict[str, Any]]) -> None:
    a, b = await _tenants(root)
    wb = (await root.add_webhook(b, "http://127.0.0.1:9/b"))["webhook_id"]
    await root.add_trunk(b, "tb", host="203.0.113.20")
    await root.add_did(b, "02873019556", "bob")
    h = bearer((await root.create_admin_key(a))["key"])
    live.extend([{"call_id": "x", "app_id": b}, {"call_id": "y", "app_id": a}])

    assert (await client.get(f"{V1}/me", headers=h)).json()["app_id"] == a
    assert [x["app_id"] for x in (await client.get(f"{V1}/apps", headers=h)).json()] == [a]
    for path in (f"/apps/{b}", "/devices/bob"):
        _err(await client.get(V1 + path, headers=h), 404, "not_found")
    for path in ("/devices", "/dids", "/trunks", "/webhooks", "/registrations", "/calls",
                 "/cdrs", "/admin-keys", "/audit"):
        _err(await client.get(V1 + path, params={"app_id": b}, headers=h), 404, "not_found")
    # Without app_id, listings are the key's app only.
    assert [d["sip_user"] for d in (await client.get(f"{V1}/devices", headers=h)).json()] == [
        "alice"]
    assert (await client.get(f"{V1}/dids", headers=h)).json() == []
    assert (await client.get(f"{V1}/trunks", headers=h)).json() == []
    assert (await client.get(f"{V1}/webhooks", headers=h)).json() == []
    assert [c["call_id"] for c in (await client.get(f"{V1}/calls", headers=h)).json()] == ["y"]
    audit = (await client.get(f"{V1}/audit", headers=h)).json()
    assert audit and {e["app_id"] for e in audit} == {a}
    # Changes to the other tenant: not found, as if it did not exist.
    _err(await client.post(f"{V1}/devices", headers=h, json={
        "app_id": b, "sip_user": "mallory", "password": "long-enough"}), 404, "not_found")
    _err(await client.put(f"{V1}/devices/bob/password", json={"password": "hijacked-pw"},
                          headers=h), 404, "not_found")
    _err(await client.delete(f"{V1}/devices/bob", headers=h), 404, "not_found")
    _err(await client.delete(f"{V1}/dids/02873019556", headers=h), 404, "not_found")
    _err(await client.patch(f"{V1}/trunks/{b}/tb", json={"priority": 1}, headers=h), 404,
         "not_found")
    _err(await client.delete(f"{V1}/trunks/{b}/tb", headers=h), 404, "not_found")
    _err(await client.post(f"{V1}/webhooks/{wb}/disable", headers=h), 404, "not_found")
    _err(await client.delete(f"{V1}/webhooks/{wb}", headers=h), 404, "not_found")
    _err(await client.patch(f"{V1}/apps/{b}", json={"record_calls": False}, headers=h), 404,
         "not_found")
    _err(await client.post(f"{V1}/apps/{b}/rotate-secret", headers=h), 404, "not_found")
    _err(await client.post(f"{V1}/admin-keys", json={"app_id": b}, headers=h), 404,
         "not_found")
    await root.add_operator("bop", "bop-password-1", b)
    assert (await client.get(f"{V1}/operators", headers=h)).json() == []
    _err(await client.delete(f"{V1}/operators/bop", headers=h), 404, "not_found")
    _err(await client.post(f"{V1}/operators", json={"name": "x", "password": "long-password",
                                                    "app_id": b}, headers=h), 404, "not_found")
    # What needs every app is forbidden.
    _err(await client.post(f"{V1}/apps", json={"name": "x"}, headers=h), 403, "forbidden")
    _err(await client.delete(f"{V1}/apps/{a}", headers=h), 403, "forbidden")
    _err(await client.post(f"{V1}/admin-keys", json={}, headers=h), 403, "forbidden")
    # Nothing of b changed.
    assert [d["sip_user"] for d in await root.list_devices(b)] == ["bob"]
    assert (await root.list_webhooks(b))[0]["enabled"] is True


async def test_the_openapi_document_lists_the_admin_endpoints(
        client: httpx.AsyncClient) -> None:
    doc = (await client.get(f"{V1}/openapi.json")).json()
    assert doc["info"]["title"] == "tongdai admin API"
    paths = set(doc["paths"])
    assert {"/v1/apps", "/v1/devices", "/v1/dids", "/v1/trunks", "/v1/webhooks",
            "/v1/registrations", "/v1/calls", "/v1/cdrs", "/v1/audit",
            "/v1/admin-keys", "/v1/flows", "/v1/extension-flows",
            "/v1/extension-flows/{app_id}/{extension}"} <= paths
    assert set(doc["paths"]["/v1/extension-flows/{app_id}/{extension}"]) == {
        "get", "put", "delete"}
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    _err(await client.get(f"{V1}/nothing-here"), 404, "not_found")
    page = await client.get("/admin/docs")
    assert page.status_code == 200 and "/admin/v1/openapi.json" in page.text
    assert "cdn" not in page.text.lower()


@pytest.mark.parametrize("body", ["{", "[]"])
async def test_malformed_bodies_are_400(client: httpx.AsyncClient, root: AdminService,
                                        body: str) -> None:
    h = bearer((await root.create_admin_key())["key"]) | {"Content-Type": "application/json"}
    _err(await client.post(f"{V1}/apps", content=body, headers=h), 400, "invalid_parameter")


async def test_flows_queues_and_agents(client: httpx.AsyncClient, root: AdminService) -> None:
    from tests.flows.test_document import EXAMPLE

    a = (await root.create_app("Shop"))["app_id"]
    b = (await root.create_app("Other"))["app_id"]
    for user in ("alice", "bob", "anna"):
        await root.add_device(a, user, f"{user}-secret")
    await root.add_did(a, "02873001234", "alice")
    h = bearer((await root.create_admin_key())["key"])
    r = await client.put(f"{V1}/flows/{a}/02873001234", json={"document": EXAMPLE}, headers=h)
    _err(r, 400, "invalid_parameter")
    assert "menu.options.1.queue: no queue 'sales' in this app" in r.json()["message"]
    check = await client.post(f"{V1}/flows/check", json={"document": EXAMPLE}, headers=h)
    assert check.json()["queues"] == ["sales"]
    r = await client.post(f"{V1}/queues", headers=h, json={
        "app_id": a, "name": "sales", "agents": ["alice", "anna"], "strategy": "round-robin"})
    assert r.status_code == 201 and r.json()["agents"] == ["alice", "anna"]
    _err(await client.post(f"{V1}/queues", headers=h, json={
        "app_id": a, "name": "q2", "agents": ["alice", "alice"]}), 400, "invalid_parameter")
    r = await client.put(f"{V1}/flows/{a}/02873001234", json={"document": EXAMPLE}, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 1, r.text
    assert (await client.get(f"{V1}/flows/02873001234", headers=h)).json()[
        "document"] == EXAMPLE
    assert [f["did"] for f in (await client.get(f"{V1}/flows", headers=h)).json()] == [
        "02873001234"]
    r = await client.patch(f"{V1}/queues/{a}/sales", json={"agents": ["anna"]}, headers=h)
    assert r.json()["agents"] == ["anna"] and r.json()["strategy"] == "round-robin"
    assert (await client.post(f"{V1}/agents/{a}/anna/pause", headers=h)).json() == {
        "sip_user": "anna", "paused": True}
    # A tenant's key: its own app only.
    hb = bearer((await root.create_admin_key(b))["key"])
    _err(await client.get(f"{V1}/flows/02873001234", headers=hb), 404, "not_found")
    assert (await client.get(f"{V1}/flows", headers=hb)).json() == []
    assert (await client.get(f"{V1}/queues", headers=hb)).json() == []
    _err(await client.delete(f"{V1}/flows/{a}/02873001234", headers=hb), 404, "not_found")
    _err(await client.patch(f"{V1}/queues/{a}/sales", json={"agents": ["bob"]}, headers=hb),
         404, "not_found")
    _err(await client.post(f"{V1}/agents/{a}/anna/unpause", headers=hb), 404, "not_found")
    # Removal, audited.
    assert (await client.delete(f"{V1}/flows/{a}/02873001234", headers=h)).status_code == 200
    assert (await client.delete(f"{V1}/queues/{a}/sales", headers=h)).status_code == 200
    actions = [e["action"] for e in await root.audit_log(a)]
    for expected in ("flow.set", "queue.added", "queue.updated", "agent.paused",
                     "flow.removed", "queue.removed"):
        assert expected in actions


async def test_extension_flows(client: httpx.AsyncClient, root: AdminService) -> None:
    from tests.flows.test_document import EXAMPLE

    a = (await root.create_app("Shop"))["app_id"]
    b = (await root.create_app("Other"))["app_id"]
    await root.add_device(a, "alice", "alice-secret", extension="101")
    await root.add_device(a, "bob", "bob-secret-pw")
    h = bearer((await root.create_admin_key())["key"])
    url = f"{V1}/extension-flows/{a}/300"
    r = await client.put(url, json={"document": EXAMPLE}, headers=h)
    _err(r, 400, "invalid_parameter")
    assert "menu.options.1.queue: no queue 'sales' in this app" in r.json()["message"]
    await root.flows.add_queue(a, "sales", ["alice", "bob"])
    _err(await client.put(f"{V1}/extension-flows/{a}/101", json={"document": EXAMPLE},
                          headers=h), 409, "conflict")  # alice's own extension
    _err(await client.put(f"{V1}/extension-flows/{a}/3x", json={"document": EXAMPLE},
                          headers=h), 400, "invalid_parameter")
    _err(await client.put(url, json={"document": "nothing: here\n"}, headers=h), 400,
         "invalid_parameter")
    r = await client.put(url, json={"document": EXAMPLE}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() | {"updated_at": 0} == {"app_id": a, "extension": "300",
                                            "name": "extension 300", "version": 1,
                                            "updated_at": 0}
    r = await client.put(url, json={"document": "device: alice\n"}, headers=h)
    assert r.json()["version"] == 2
    got = (await client.get(url, headers=h)).json()
    assert got["document"] == "device: alice\n" and got["version"] == 2
    rows = (await client.get(f"{V1}/extension-flows", headers=h)).json()
    assert [(f["app_id"], f["extension"]) for f in rows] == [(a, "300")]
    assert (await client.get(f"{V1}/flows", headers=h)).json() == []  # DIDs' only
    _err(await client.get(f"{V1}/extension-flows/{a}/301", headers=h), 404, "not_found")
    # A tenant's key: its own app only, another's answers 404 as if it did not exist.
    hb = bearer((await root.create_admin_key(b))["key"])
    _err(await client.get(url, headers=hb), 404, "not_found")
    assert (await client.get(f"{V1}/extension-flows", headers=hb)).json() == []
    _err(await client.get(f"{V1}/extension-flows", params={"app_id": a}, headers=hb), 404,
         "not_found")
    _err(await client.put(url, json={"document": "hangup: {}\n"}, headers=hb), 404,
         "not_found")
    _err(await client.delete(url, headers=hb), 404, "not_found")
    assert (await root.flows.get_extension_flow(a, "300"))["version"] == 2
    ha = bearer((await root.create_admin_key(a))["key"])
    assert [f["extension"] for f in (await client.get(f"{V1}/extension-flows",
                                                      headers=ha)).json()] == ["300"]
    # A device a flow uses cannot be removed; the flow's removal is audited.
    _err(await client.delete(f"{V1}/devices/alice", headers=h), 409, "conflict")
    assert (await client.delete(url, headers=ha)).json() == {"extension": "300",
                                                            "removed": True}
    _err(await client.delete(url, headers=ha), 404, "not_found")
    audit = [(e["action"], e["target"], (e["detail"] or {}).get("version"))
             for e in await root.audit_log(a) if e["action"].startswith("flow.")]
    assert audit == [("flow.removed", "ext:300", None), ("flow.set", "ext:300", 2),
                         ("flow.set", "ext:300", 1)]


async def test_prompts(client: httpx.AsyncClient, root: AdminService) -> None:
    a, b = await _tenants(root)
    h = bearer((await root.create_admin_key())["key"])
    rows = (await client.get(f"{V1}/prompts", params={"app_id": a}, headers=h)).json()
    assert rows and {r["source"] for r in rows} == {"built-in"}
    r = await client.post(f"{V1}/prompts", headers=h, json={
        "app_id": a, "name": "hello", "text": "Xin chào", "lang": "vi"})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "text (vi)" and r.json()["seconds"] > 0
    _err(await client.post(f"{V1}/prompts", headers=h, json={
        "app_id": a, "name": "../x", "text": "x"}), 400, "invalid_parameter")
    hb = bearer((await root.create_admin_key(b))["key"])
    _err(await client.get(f"{V1}/prompts", params={"app_id": a}, headers=hb), 404,
         "not_found")
    _err(await client.delete(f"{V1}/prompts/{a}/hello", headers=hb), 404, "not_found")
    assert (await client.delete(f"{V1}/prompts/{a}/hello", headers=h)).json() == {
        "removed": "hello", "app_id": a}
    _err(await client.delete(f"{V1}/prompts/{a}/hello", headers=h), 404, "not_found")
