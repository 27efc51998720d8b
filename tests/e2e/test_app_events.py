"""The app-wide event stream with the real server: numbering kept through a restart on
the embedded SQLite, and two tongdai processes on PostgreSQL + Redis whose streams
agree on every number: devices registering at either, and a click-to-call (with the
integrator's external_id and metadata) made through the other's API."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.e2e.conftest import Phones, Server, free_port, make_server, scenario
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e


def _sha(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def _app(server: Server, devices: list[str]) -> tuple[str, str, Path]:
    app = server.cli("app", "create", "crm")
    pairs = [(u, f"{u}-secret-pw") for u in devices]
    server.add_devices(app["app_id"], pairs)
    csv = server.data_dir.parent / f"users-{secrets.token_hex(3)}.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{u};{p};[authentication username={u} password={p}];\n" for u, p in pairs))
    return app["app_id"], app["app_secret"], csv


def _register(server: Server, csv: Path, first: int, count: int) -> None:
    """REGISTER ``count`` devices of ``csv`` from line ``first`` (device.registered each)."""
    lines = csv.read_text().splitlines()
    part = csv.with_name(f"{csv.stem}-{first}.csv")
    part.write_text("\n".join([lines[0], *lines[1 + first:1 + first + count]]) + "\n")
    subprocess.run(
        ["sipp", server.sip, "-sf", scenario("register_auth_uac.xml"), "-inf", str(part),
         "-i", "127.0.0.1", "-p", str(free_port()), "-m", str(count), "-timeout", "30",
         "-nostdin"], cwd=csv.parent, check=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, timeout=60)


def _stream(server: Server, app_id: str, secret: str, query: str = "",
            compression: str | None = None) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.http_port}/oapi/v1/events/ws{query}",
                   additional_headers={"x-auth-app-id": app_id,
                                       "x-auth-app-hash": _sha(app_id, secret)},
                   open_timeout=10, compression=compression)


def _events(ws: ClientConnection, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        msg = json.loads(ws.recv(timeout=timeout))
        if msg["type"] not in ("hello", "ping", "gap"):
            out.append(msg)
    return out


def _carrier(tmp: Path, port: int, audio: Path) -> subprocess.Popen[bytes]:
    """A SIPp carrier that answers one call and waits for its BYE."""
    src = Path(scenario("uas_answer.xml")).read_text()
    path = tmp / "carrier.xml"
    path.write_text(src.replace("@RING_MS@", "300").replace("@AUDIO@", str(audio)))
    return subprocess.Popen(
        ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()),
         "-m", "1", "-timeout", "60", "-nostdin"],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _hello(ws: ClientConnection) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(ws.recv(timeout=10))
    assert msg["type"] == "hello"
    return msg


def test_numbers_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    server.start()
    try:
        app_id, secret, csv = _app(server, [f"dev{i}" for i in range(4)])
        with _stream(server, app_id, secret, "?events=device.registered") as ws:
            _hello(ws)
            _register(server, csv, 0, 2)
            before = _events(ws, 2)
        assert [m["seq"] for m in before] == [1, 2]
        assert sorted(m["devices"][0] for m in before) == ["dev0", "dev1"]

        server.stop()
        server.start()
        _register(server, csv, 2, 2)  # nobody connected: replayed below
        with _stream(server, app_id, secret, "?events=device.registered&since=2") as ws:
            assert _hello(ws)["seq"] >= 4
            after = _events(ws, 2)
        assert [m["seq"] for m in after] == sorted(m["seq"] for m in after)
        assert after[0]["seq"] > 2
        assert sorted(m["devices"][0] for m in after) == ["dev2", "dev3"]
        # Offered permessage-deflate (as most clients do), the server declines it: a
        # busy stream would compress every message once per subscriber.
        with _stream(server, app_id, secret, "?events=device.registered&since=0",
                     compression="deflate") as ws:
            assert ws.protocol.extensions == []
            _hello(ws)
            everything = _events(ws, 4)
        assert [m["seq"] for m in everything] == [1, 2] + [m["seq"] for m in after]
    finally:
        server.stop()


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_processes_on_postgresql_and_redis_agree(
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
        app_id, secret, csv = _app(one, [f"dev{i}" for i in range(6)])
        with (_stream(one, app_id, secret, "?events=device.*") as s1,
              _stream(two, app_id, secret, "?events=device.*") as s2):
            _hello(s1)
            _hello(s2)
            _register(one, csv, 0, 3)
            _register(two, csv, 3, 3)
            got1, got2 = _events(s1, 6), _events(s2, 6)
        assert [m["seq"] for m in got1] == list(range(1, 7))
        assert [(m["seq"], m["devices"]) for m in got1] == \
            [(m["seq"], m["devices"]) for m in got2]
        assert sorted(m["devices"][0] for m in got1) == [f"dev{i}" for i in range(6)]
        # A client of the second process replays from the shared log.
        with _stream(two, app_id, secret, "?events=device.*&since=4") as s:
            _hello(s)
            assert [m["seq"] for m in _events(s, 2)] == [5, 6]

        # A call made through the second process's API: a stream on each sees all of
        # its events, numbered alike, each with the integrator's correlation.
        carrier_port = free_port()
        one.cli("device", "add", "--app", app_id, "agent", "--password", "agent-secret-pw")
        one.cli("trunk", "add", "--app", app_id, "carrier", "--host", "127.0.0.1",
                "--port", str(carrier_port))
        time.sleep(1.5)  # the second process notices the new device and trunk
        with (_stream(one, app_id, secret, "?events=call.*") as s1,
              _stream(two, app_id, secret, "?events=call.*") as s2):
            _hello(s1)
            _hello(s2)
            agent = phones.start("agent")
            agent.add_account("agent", "agent-secret-pw", two.sip)
            agent.ctl.wait_event("REGISTER_OK", 10)
            carrier = _carrier(tmp_path, carrier_port, audio["tone1000_pcmu"])
            meta = {"ticket": "T-1042", "queue": "renewals"}
            r = httpx.post(
                f"{two.http}/oapi/v1/call/click-to-call/0901234567", timeout=10,
                headers={"x-auth-app-id": app_id, "x-auth-app-hash": _sha(app_id, secret)},
                json={"sipUser": "agent", "sipPassword": "agent-secret-pw",
                      "external_id": "crm-1042", "metadata": meta})
            assert r.status_code == 200, r.text
            call_id = r.json()["call_id"]
            agent.ctl.wait_event("CALL_ESTABLISHED", 10)
            time.sleep(1)
            agent.ctl.cmd("hangup")
            assert carrier.wait(30) == 0
            call1, call2 = _events(s1, 3), _events(s2, 3)
        assert [m["type"] for m in call1] == ["call.ringing", "call.answered", "call.ended"]
        assert [m["seq"] for m in call1] == [m["seq"] for m in call2]
        assert call1[0]["seq"] > 6
        for m in call1 + call2:
            assert m["data"]["call_id"] == call_id
            assert m["data"]["external_id"] == "crm-1042" and m["data"]["metadata"] == meta
    finally:
        one.stop()
        two.stop()
        keys = list(redis.Redis().scan_iter(match=f"{prefix}:*"))
        if keys:
            redis.Redis().delete(*keys)
