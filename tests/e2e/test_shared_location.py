"""Two tongdai processes on one PostgreSQL: a softphone registered over UDP at the
first is online for the second's presence, rung by a click-to-call sent to the
second (which sends the INVITE itself, straight to the phone's address), and seen
offline there soon after it unregisters at the first."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.e2e.conftest import Phones, Server, free_port, make_server, scenario, wait_until

from tongdai.pbx.shared_location import SHARED_TTL

pytestmark = [pytest.mark.e2e, pytest.mark.pg]


def _headers(app_id: str, secret: str) -> dict[str, str]:
    return {"x-auth-app-id": app_id,
            "x-auth-app-hash": hashlib.sha256((app_id + secret).encode()).hexdigest()}


def _presence(node: Server, app_id: str, secret: str, sip_user: str) -> dict[str, Any]:
    r = httpx.get(f"{node.http}/oapi/v1/devices", headers=_headers(app_id, secret), timeout=10)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = next(d for d in r.json()["data"] if d["sip_user"] == sip_user)
    return found


def _click_to_call(node: Server, app_id: str, secret: str, number: str) -> httpx.Response:
    return httpx.post(
        f"{node.http}/oapi/v1/call/click-to-call/{number}", headers=_headers(app_id, secret),
        json={"sipUser": "agent", "sipPassword": "agent-secret-pw"}, timeout=10)


def _carrier(tmp: Path, port: int, audio: Path) -> subprocess.Popen[bytes]:
    """A SIPp carrier that answers one call and waits for its BYE."""
    src = Path(scenario("uas_answer.xml")).read_text()
    path = tmp / "carrier.xml"
    path.write_text(src.replace("@RING_MS@", "300").replace("@AUDIO@", str(audio)))
    return subprocess.Popen(
        ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()),
         "-m", "1", "-timeout", "60", "-nostdin"],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_phone_registered_at_one_node_is_rung_from_the_other(
    tmp_path: Path, db_url: str, phones: Phones, audio: dict[str, Path],
) -> None:
    prefix = f"t{secrets.token_hex(6)}"
    bus = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    try:
        redis.Redis(socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    one = make_server(tmp_path, database_url=db_url, bus_url=bus)
    two = make_server(tmp_path, database_url=db_url, bus_url=bus)  # same data dir and key
    one.start()
    two.start()
    try:
        app = one.cli("app", "create", "crm")
        app_id, secret = app["app_id"], app["app_secret"]
        carrier_port = free_port()
        one.cli("device", "add", "--app", app_id, "agent", "--password", "agent-secret-pw")
        one.cli("trunk", "add", "--app", app_id, "carrier", "--host", "127.0.0.1",
                "--port", str(carrier_port))

        agent = phones.start("agent")
        agent.add_account("agent", "agent-secret-pw", one.sip)
        agent.ctl.wait_event("REGISTER_OK", 10)
        # Presence on the second node: online, over UDP.
        seen = wait_until(lambda: (d := _presence(two, app_id, secret, "agent"))["online"]
                          and d, timeout=10)
        assert seen["transport"] == "udp"

        # Click-to-call through the second node (it notices the new trunk within a
        # second or so, as a refused number would show).
        carrier = _carrier(tmp_path, carrier_port, audio["tone1000_pcmu"])
        r = wait_until(lambda: (x := _click_to_call(two, app_id, secret, "0901234567"))
                       .status_code == 200 and x, timeout=10)
        call_id = r.json()["call_id"]
        agent.ctl.wait_event("CALL_ESTABLISHED", 10)
        # The carrier answers too: the second node's presence shows the agent talking.
        wait_until(lambda: _presence(two, app_id, secret, "agent")["call_state"] == "talking",
                   timeout=10)
        agent.ctl.cmd("hangup")
        assert carrier.wait(30) == 0
        cdr = wait_until(lambda: next((c for c in two.cli("cdr", "list", "--app", app_id)
                                       if c["call_id"] == call_id), None), timeout=20)
        assert cdr["status_detail"] == "SUCCESS"
        assert cdr["caller"]["username"] == "agent"
        # The second node placed the call itself: the first never heard of it.
        assert call_id in two.log()
        assert call_id not in one.log()

        # Unregistering at the first node: offline at the second within its cache time
        # (plus the first node's write-behind and this poll's own pace).
        agent.stop()
        wait_until(lambda: not _presence(one, app_id, secret, "agent")["online"], timeout=15)
        wait_until(lambda: _click_to_call(two, app_id, secret, "0901234567").status_code == 400,
                   timeout=SHARED_TTL * 2 + 2)
        assert not _presence(two, app_id, secret, "agent")["online"]
    finally:
        one.stop()
        two.stop()
        keys = list(redis.Redis().scan_iter(match=f"{prefix}:*"))
        if keys:
            redis.Redis().delete(*keys)
