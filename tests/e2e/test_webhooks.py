"""Webhooks with the real server: calls from a SIPp carrier to a baresip device, and a
click-to-call with the integrator's external_id and metadata, while the receiver is
down, tongdai restarted, then the receiver started: every event arrives once, signed,
in order per call, the click-to-call's each with its correlation."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.conftest import Phones, free_port, make_server, scenario, wait_until
from tests.webhooks.receiver import ThreadedReceiver

pytestmark = pytest.mark.e2e

DID = "02873019555"
CALLS = 3
META = {"ticket": "T-1042", "customer": "Nguyễn Văn A"}


def test_receiver_down_and_a_restart_lose_no_event(
    tmp_path: Path, phones: Phones, audio: dict[str, Path],
) -> None:
    server = make_server(tmp_path, webhook_allow_private="true", webhook_retry_base="0.2",
                         webhook_retry_max="1", media_timeout="10")
    server.start()
    rx = ThreadedReceiver(secrets=[])
    try:
        created = server.cli("app", "create", "crm")
        app, secret = created["app_id"], created["app_secret"]
        carrier_port = free_port()
        server.cli("device", "add", "--app", app, "alice", "--password", "alice-secret-pw",
                   "--extension", "101")
        server.cli("trunk", "add", "--app", app, "carrier", "--host", "127.0.0.1",
                   "--port", str(carrier_port))
        server.cli("did", "add", "--app", app, DID, "--device", "alice")
        port = free_port()  # the receiver's, closed for now
        hook = server.cli("webhook", "add", "--app", app,
                          f"http://127.0.0.1:{port}/tongdai", "--events", "call.*,device.*")
        rx.receiver.secrets.append(hook["secret"])
        time.sleep(1.5)  # the server notices the new webhook within a second

        phone = phones.start("alice")
        phone.add_account("alice", "alice-secret-pw", server.sip)
        phone.ctl.wait_event("REGISTER_OK", 10)
        src = Path(scenario("uac_did.xml")).read_text()
        path = tmp_path / "uac_did.xml"
        path.write_text(src.replace("@AUDIO@", str(audio["tone1000_pcmu"])))
        carrier = subprocess.run(
            ["sipp", server.sip, "-sf", str(path), "-s", DID, "-i", "127.0.0.1",
             "-p", str(carrier_port), "-mp", str(free_port()), "-m", str(CALLS), "-l", "1",
             "-d", "1000", "-timeout", "60", "-nostdin"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)
        assert carrier.returncode == 0, server.log()[-3000:]
        # Then alice clicks to call a customer, for a ticket of the CRM.
        uas = Path(scenario("uas_answer.xml")).read_text()
        path = tmp_path / "uas_answer.xml"
        path.write_text(uas.replace("@RING_MS@", "300").replace(
            "@AUDIO@", str(audio["tone1000_pcmu"])))
        callee = subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(carrier_port),
             "-mp", str(free_port()), "-m", "1", "-timeout", "60", "-nostdin"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = httpx.post(f"{server.http}/oapi/v1/call/click-to-call/0901234567", timeout=10,
                       headers={"x-auth-app-id": app, "x-auth-app-hash": hashlib.sha256(
                           (app + secret).encode()).hexdigest()},
                       json={"sipUser": "alice", "sipPassword": "alice-secret-pw",
                             "external_id": "crm-1042", "metadata": META})
        assert r.status_code == 200, r.text
        c2c = r.json()["call_id"]
        phone.ctl.wait_event("CALL_ESTABLISHED", 10)
        time.sleep(1)
        phone.ctl.cmd("hangup")
        assert callee.wait(30) == 0
        wait_until(lambda: len(server.cli("cdr", "list", "--app", app)) >= CALLS + 1, 20)
        # alice registered; each call rang, was answered, ended
        expected = 1 + 3 * (CALLS + 1)

        def deliveries() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = server.cli("webhook", "deliveries", "--app", app,
                                                    "--limit", "1000")
            return rows
        # All in the outbox, none delivered, the receiver's absence noted (a call's
        # later events wait behind its first, so not each has been tried).
        rows = wait_until(lambda: len(r := deliveries()) >= expected
                          and any(d["attempts"] >= 2 for d in r) and r, 20)
        assert len(rows) == expected
        assert all(d["status"] == "pending" for d in rows)
        assert any("Connect" in d["last_error"] for d in rows)

        server.stop()
        server.start()  # tongdai restarts with everything still pending ...
        rx.start(port)  # ... then the receiver comes back
        wait_until(lambda: len(rx.receiver.unique()) >= expected, 30)
        wait_until(lambda: all(d["status"] == "delivered" for d in deliveries()), 10)
        time.sleep(1.0)  # anything sent twice would have arrived by now
    finally:
        rx.stop()
        server.stop()

    got = rx.receiver.got
    unique = rx.receiver.unique()
    assert len(unique) == expected and len(got) == expected  # each once
    assert {d["delivery_id"] for d in rows} == set(unique)
    assert all(r.signature_ok for r in got)
    per_call: dict[str, list[str]] = {}
    for r in got:
        if r.event.startswith("call."):
            per_call.setdefault(r.body["data"]["call_id"], []).append(r.event)
    assert len(per_call) == CALLS + 1
    assert all(v == ["call.ringing", "call.answered", "call.ended"] for v in per_call.values())
    for r in got:
        if r.event.startswith("call."):
            correlated = r.body["data"]["call_id"] == c2c
            assert r.body["data"].get("external_id") == ("crm-1042" if correlated else None)
            assert r.body["data"].get("metadata") == (META if correlated else None)
    [registered] = [r for r in got if r.event == "device.registered"]
    assert registered.body["data"]["sip_user"] == "alice"
    assert registered.body["app_id"] == app
