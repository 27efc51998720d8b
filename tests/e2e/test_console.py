"""The operator's console in a real browser (Debian's chromium, driven by Playwright):
sign in, add devices, see a phone come online, watch a live call appear and end, play
its recording, and a tenant's key confined to its app. Screenshots of every page go
to test-artifacts/console/; page load times and the live-update latency (event on the
server to change on screen) are printed and saved there as figures.json."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e import browser
from tests.e2e.browser import CHROMIUM
from tests.e2e.conftest import Phones, Server, make_server, wait_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]


pytestmark = browser.marks(browser.missing())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _load_ms(page: Any) -> float:
    """First load of the page: navigation start to the end of its load event."""
    return float(page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"))


def _sign_in(page: Any, server: Server, key: str) -> None:
    page.goto(f"{server.http}/console/")
    assert page.url.endswith("/console/signin")
    page.fill("#key", key)
    page.click("#key-submit")
    page.wait_for_selector("#live-status.on")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def test_the_console_end_to_end(server: Server, phones: Phones, browser: Any) -> None:
    app_id = server.cli("app", "create", "Acme")["app_id"]
    key = server.cli("admin-key", "create", "--label", "e2e")["key"]
    page = browser.new_page()
    loads: dict[str, float] = {}
    page.goto(f"{server.http}/console/signin")
    loads["signin"] = _load_ms(page)
    _shot(page, "signin")
    _sign_in(page, server, key)
    loads["dashboard"] = _load_ms(page)

    # Add two devices through the form; a bad one shows the CLI's error in place.
    page.click("#nav-devices")
    page.wait_for_selector("#add-device")
    loads["devices"] = _load_ms(page)
    page.fill("#new-sip-user", "carol")
    page.fill("#new-password", "short")
    page.evaluate("() => document.getElementById('new-password').removeAttribute('minlength')")
    page.click("#add-device-submit")
    assert "at least 8 characters" in page.inner_text("#device-error")
    for user, ext in (("alice", "101"), ("bob", "102")):
        page.fill("#new-sip-user", user)
        page.fill("#new-password", f"{user}-secret-pw")
        page.fill("#new-extension", ext)
        page.click("#add-device-submit")
        page.wait_for_selector(f'.presence.offline[data-sip-user="{user}"]')
    page.wait_for_selector("#live-status.on")
    _shot(page, "devices-offline")

    # A softphone registers: the badge turns online, with no reload of the page.
    page.evaluate("() => { window.__same_page = true; }")
    alice = phones.start("alice")
    alice.add_account("alice", "alice-secret-pw", server.sip)
    page.wait_for_selector('.presence.online[data-sip-user="alice"]', timeout=15000)
    assert page.evaluate("() => window.__same_page") is True
    _shot(page, "devices-online")
    bob = phones.start("bob", "tone1000")
    bob.add_account("bob", "bob-secret-pw", server.sip)
    bob.ctl.wait_event("REGISTER_OK", 10)
    page.wait_for_selector('.presence.online[data-sip-user="bob"]', timeout=15000)
    # The server writes bindings behind (within about a second); the dashboard's first
    # render reads them.
    wait_until(lambda: len(server.cli("registration", "list")) == 2, 10, 0.2)

    latencies = [float(x) for x in page.evaluate("() => window.tdLatencies")]

    # A live call appears on the dashboard with its parties, then ends.
    page.click("#nav-dashboard")
    page.wait_for_selector("#live-status.on")
    assert page.inner_text("#online-count") == "2"
    page.evaluate("() => { window.__same_page = true; }")
    assert alice.ctl.cmd("dial", f"sip:102@{server.sip}").get("ok")
    row = page.wait_for_selector("#live-calls tbody tr", timeout=15000)
    assert row is not None
    page.wait_for_selector("#live-calls .state.talking", timeout=15000)
    assert page.inner_text("#live-calls .caller") in ("101", "alice")
    assert page.inner_text("#live-calls .callee") in ("102", "bob")
    time.sleep(3)  # some seconds of audio for the recording; the duration runs meanwhile
    assert page.inner_text("#live-calls .duration") not in ("0:00", "")
    _shot(page, "dashboard-live-call")
    alice.ctl.cmd("hangup")
    page.wait_for_selector("#live-calls tbody tr", state="detached", timeout=15000)
    assert page.is_visible("#no-live-calls")
    assert page.evaluate("() => window.__same_page") is True
    latencies += [float(x) for x in page.evaluate("() => window.tdLatencies")]
    _shot(page, "dashboard")

    # The call's recording plays from the history.
    def recorded() -> bool:
        rows = server.cli("cdr", "list", "--app", app_id)
        return bool(rows) and bool(rows[0]["recording"]) and (
            server.data_dir / "recordings" / app_id / rows[0]["recording"]).is_file()

    wait_until(recorded, 30, 0.5)
    page.click("#nav-calls")
    page.wait_for_selector("#cdrs audio")
    loads["calls"] = _load_ms(page)
    page.evaluate("() => document.querySelector('#cdrs audio').play()")
    wait_until(lambda: page.evaluate(
        "() => { const a = document.querySelector('#cdrs audio');"
        " return a.duration > 0 && a.currentTime > 0 && a.error === null; }"), 15, 0.2)
    duration = float(page.evaluate("() => document.querySelector('#cdrs audio').duration"))
    assert duration > 1, duration
    _shot(page, "calls")
    page.fill("input[name=number]", "0999999999")
    page.click("#call-filters button")
    page.wait_for_selector("#cdrs")
    assert page.query_selector("#cdrs audio") is None  # the filter applies
    page.click("#nav-webhooks")
    page.wait_for_selector("#deliveries")
    loads["webhooks"] = _load_ms(page)
    _shot(page, "webhooks")
    page.click("#lang-switch")
    page.wait_for_selector("#webhooks")
    assert "Lần gửi" in page.inner_text("main")
    _shot(page, "webhooks-vi")

    figures = {"page_load_ms": {k: round(v, 1) for k, v in loads.items()},
               "live_update_ms": {"n": len(latencies),
                                  "p50": round(statistics.median(latencies), 1),
                                  "p95": round(_p95(latencies), 1),
                                  "max": round(max(latencies), 1)},
               "recording_seconds": round(duration, 2)}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print("console figures:", json.dumps(figures))
    assert latencies, "no live update was timed"


def test_a_tenant_key_cannot_open_another_tenants_pages_or_api(
        server: Server, browser: Any) -> None:
    a = server.cli("app", "create", "Acme")["app_id"]
    b = server.cli("app", "create", "Beta")["app_id"]
    server.cli("device", "add", "--app", b, "bob", "--password", "bob-secret-pw")
    key = server.cli("admin-key", "create", "--app", a)["key"]
    page = browser.new_page()
    _sign_in(page, server, key)
    assert b not in page.content()
    for path in ("/console/", "/console/devices", "/console/calls", "/console/webhooks"):
        r = page.goto(f"{server.http}{path}?app={b}")
        assert r is not None and r.status == 404, path
    _shot(page, "tenant-404")
    r = page.goto(f"{server.http}/console/devices")
    assert r is not None and r.status == 200 and "bob" not in page.inner_text("#devices")
    # The API with the same key, from the page.
    statuses = page.evaluate(
        """async ([key, b]) => {
             const h = {headers: {Authorization: 'Bearer ' + key}};
             const out = [];
             for (const p of ['/admin/v1/apps/' + b, '/admin/v1/devices?app_id=' + b,
                              '/admin/v1/devices/bob', '/admin/v1/cdrs?app_id=' + b]) {
               out.push((await fetch(p, h)).status);
             }
             out.push((await fetch('/admin/v1/apps', h).then(r => r.json())).length);
             return out;
           }""", [key, b])
    assert statuses == [404, 404, 404, 404, 1]
    # Nor its live updates.
    closed = page.evaluate(
        """(b) => new Promise(done => {
             const ws = new WebSocket('ws://' + location.host + '/console/ws?app=' + b);
             ws.onclose = e => done(e.code);
           })""", b)
    assert closed == 4403


def test_the_demo_prints_the_console_and_a_sign_in_that_works(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    import httpx

    srv = make_server(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "tongdai", "demo"], env=srv.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if not line or line.startswith("Console ("):
                break
        out = "".join(lines)
        assert f"Console   http://127.0.0.1:{srv.http_port}/console" in out, out
        m = re.search(r"Console \((http://\S+/console)\): sign in as operator (\S+), "
                      r"password (\S+)", out)
        assert m, out
        url, name, password = m.groups()
        with httpx.Client(base_url=url.removesuffix("/console")) as c:
            page = c.get("/console/signin")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            r = c.post("/console/signin", data={"csrf": token.group(1), "name": name,
                                                "password": password})
            assert r.status_code == 303, r.text
            assert c.get("/console/").status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_flow_saved_with_an_error_shows_it_at_the_node(server: Server, browser: Any) -> None:
    app = server.cli("app", "create", "Shop")["app_id"]
    for user in ("alice", "bob"):
        server.cli("device", "add", "--app", app, user, "--password", f"{user}-secret-pw")
    server.cli("did", "add", "--app", app, "02873001234", "--device", "alice")
    page = browser.new_page()
    _sign_in(page, server, server.cli("admin-key", "create")["key"])
    page.click("#nav-flows")
    page.click('#flows a:has-text("02873001234")')
    page.fill("#flow-document", "menu:\n  prompt: welcome\n  options:\n"
                                "    \"1\": {queue: sales}\n    \"2\": {device: bob}\n")
    page.click("#flow-save")
    node = page.wait_for_selector('li.node-error[data-path="menu.options.1.queue"]')
    assert node is not None
    assert "no queue 'sales' in this app" in node.inner_text()
    assert page.input_value("#flow-document").startswith("menu:")  # the text is kept
    _shot(page, "flow-error")
    server.cli("queue", "add", "--app", app, "sales", "--agents", "alice,bob")
    page.click("#flow-save")
    page.wait_for_selector("#flow-saved")
    assert page.query_selector(".node-error") is None
    assert server.cli("flow", "show", "--did", "02873001234")["version"] == 1
    _shot(page, "flows")


def test_an_extension_gets_a_flow_in_the_console(server: Server, browser: Any) -> None:
    app = server.cli("app", "create", "Shop")["app_id"]
    server.cli("device", "add", "--app", app, "alice", "--password", "alice-secret-pw",
               "--extension", "101")
    page = browser.new_page()
    _sign_in(page, server, server.cli("admin-key", "create")["key"])
    page.click("#nav-flows")
    page.fill("#extension-number", "300")
    page.click("#extension-go")
    page.wait_for_selector("#flow-form")
    page.fill("#flow-document", "menu:\n  prompt: welcome\n  options:\n"
                                "    \"1\": {device: carol}\n")
    page.click("#flow-save")
    node = page.wait_for_selector('li.node-error[data-path="menu.options.1.device"]')
    assert node is not None and "no device 'carol' in this app" in node.inner_text()
    page.fill("#flow-document", "menu:\n  prompt: welcome\n  options:\n"
                                "    \"1\": {device: alice}\n")
    page.click("#flow-save")
    page.wait_for_selector("#flow-saved")
    page.wait_for_selector('#extension-flows tr[data-extension="300"]')
    shown = server.cli("flow", "show", "--app", app, "--extension", "300")
    assert shown["version"] == 1 and "alice" in shown["document"]
    _shot(page, "extension-flow")
    page.click("#nav-extflows")
    page.click('#rows-extflows tr[data-key="300"] button[data-action="remove"]')
    page.wait_for_selector('#rows-extflows tr[data-key="300"]', state="detached")
    assert server.cli("flow", "list", "--app", app) == []


def test_a_did_is_added_through_its_form(server: Server, browser: Any) -> None:
    app = server.cli("app", "create", "Shop")["app_id"]
    server.cli("device", "add", "--app", app, "alice", "--password", "alice-secret-pw")
    page = browser.new_page()
    _sign_in(page, server, server.cli("admin-key", "create")["key"])
    page.click("#nav-dids")
    page.wait_for_selector("#form-dids")
    page.fill("#field-dids-number", "028 7300 1234")
    page.fill("#field-dids-sip_user", "alice")
    page.click("#submit-dids")
    page.wait_for_selector('#rows-dids tr[data-key="02873001234"]')
    assert [d["number"] for d in server.cli("did", "list", "--app", app)] == ["02873001234"]
    _shot(page, "dids")
    page.fill("#field-dids-number", "02873009999")
    page.fill("#field-dids-sip_user", "nobody")
    page.click("#submit-dids")
    assert "nobody" in page.wait_for_selector("#resource-error").inner_text()
    page.click('#rows-dids tr[data-key="02873001234"] button[data-action="remove"]')
    page.wait_for_selector('#rows-dids tr[data-key="02873001234"]', state="detached")
    assert server.cli("did", "list", "--app", app) == []
