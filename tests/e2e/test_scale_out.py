"""The multi-node topology of ``deploy/run`` (``tongdai.deploy``): a Kamailio edge in
front of two tongdai nodes on one fresh PostgreSQL database and one Redis.

- A softphone registered over TCP through the edge (REGISTER forwarded with Path,
  RFC 3327) is rung by a click-to-call POSTed to either node: each sends its INVITE
  to the edge, which delivers it over the phone's connection.
- Under SIPp call load through the edge, ``kill -9`` of one node: new calls go on
  through the other (the dispatcher fails over), every call that completed has its
  CDR in the shared database, and a websocket subscriber of the surviving node keeps
  receiving the app's events.

Skipped when kamailio is missing, except in CI where that is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.e2e.conftest import Phones, free_port, port_block, scenario, sipp_logged, wait_until
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tongdai.deploy import Node, Topology, TopologySpec

PG_ADMIN = os.environ.get("TONGDAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _missing() -> str:
    if shutil.which("kamailio") is None or shutil.which("kamcmd") is None:
        return "kamailio is not installed (.ci/run installs it)"
    try:
        redis.Redis(socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        return "no Redis at 127.0.0.1:6379"
    return ""


def _marks() -> list[pytest.MarkDecorator]:
    why = _missing()
    if os.environ.get("CI") and why:
        raise RuntimeError(f"the scale-out tests cannot run in CI: {why}")
    return [pytest.mark.e2e, pytest.mark.pg, pytest.mark.skipif(bool(why), reason=why or "-")]


pytestmark = _marks()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(TopologySpec(run_dir=tmp_path / "topology", pg_admin=PG_ADMIN,
                                 rtp_base=port_block(4000)[0]))
    topo.start()
    try:
        yield topo
    finally:
        topo.stop()


def _cli(topo: Topology, *args: str) -> Any:
    res = subprocess.run([sys.executable, "-m", "tongdai", *args, "--json"],
                         env=topo.node_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _headers(app_id: str, secret: str) -> dict[str, str]:
    return {"x-auth-app-id": app_id,
            "x-auth-app-hash": hashlib.sha256((app_id + secret).encode()).hexdigest()}


def _carrier(tmp: Path, port: int, audio: Path, calls: int = 0) -> subprocess.Popen[bytes]:
    """A SIPp carrier answering calls (``calls`` of them, or until killed)."""
    src = Path(scenario("uas_answer.xml")).read_text()
    path = tmp / "carrier.xml"
    path.write_text(src.replace("@RING_MS@", "100").replace("@AUDIO@", str(audio)))
    limit = ["-m", str(calls)] if calls else []
    return subprocess.Popen(
        ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()),
         *limit, "-timeout", "120", "-nostdin"],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _app(topo: Topology, carrier_port: int) -> tuple[str, str]:
    app = _cli(topo, "app", "create", "scale")
    _cli(topo, "trunk", "add", "--app", app["app_id"], "carrier", "--host", "127.0.0.1",
         "--port", str(carrier_port))
    return app["app_id"], app["app_secret"]


def _call_state(node: Node, app_id: str, secret: str, sip_user: str) -> str:
    r = httpx.get(f"{node.http}/oapi/v1/devices", headers=_headers(app_id, secret), timeout=10)
    assert r.status_code == 200, r.text
    return str(next(d for d in r.json()["data"] if d["sip_user"] == sip_user)["call_state"])


def _cdrs(node: Node, app_id: str) -> list[dict[str, Any]]:
    res = subprocess.run([sys.executable, "-m", "tongdai", "cdr", "list", "--app", app_id,
                          "--limit", "500", "--json"], env=node.env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    return rows


def test_a_phone_registered_through_the_edge_is_rung_from_either_node(
    topology: Topology, phones: Phones, audio: dict[str, Path], tmp_path: Path,
) -> None:
    assert topology.edge is not None
    carrier_port = free_port()
    app_id, secret = _app(topology, carrier_port)
    _cli(topology, "device", "add", "--app", app_id, "agent", "--password", "agent-secret-pw")
    agent = phones.start("agent")
    agent.add_account("agent", "agent-secret-pw", topology.edge.sip, transport="tcp")
    agent.ctl.wait_event("REGISTER_OK", 15)
    for node in topology.nodes:
        carrier = _carrier(tmp_path, carrier_port, audio["tone1000_pcmu"], calls=1)
        r = wait_until(lambda n=node: (x := httpx.post(
            f"{n.http}/oapi/v1/call/click-to-call/0901234567", headers=_headers(app_id, secret),
            json={"sipUser": "agent", "sipPassword": "agent-secret-pw"}, timeout=10))
            .status_code == 200 and x, timeout=15)
        call_id = r.json()["call_id"]
        agent.ctl.wait_event("CALL_ESTABLISHED", 15)
        # The carrier answers too before the agent hangs up.
        wait_until(lambda n=node: _call_state(n, app_id, secret, "agent") == "talking",
                   timeout=10)
        agent.ctl.cmd("hangup")
        assert carrier.wait(30) == 0
        cdr = wait_until(lambda n=node, c=call_id: next(
            (row for row in _cdrs(n, app_id) if row["call_id"] == c), None), timeout=20)
        assert cdr["status_detail"] == "SUCCESS"
        assert call_id in node.log()  # this node placed the call, through the edge
    # The edge delivered to the phone over the connection it registered on.
    assert "edge.failover" not in topology.edge.log_path.read_text()


class Callers:
    """A device calling one distinct number per call through the edge with SIPp; its
    log says which calls were answered and which completed (the 200 to its BYE)."""

    def __init__(self, topo: Topology, app_id: str, work: Path, count: int) -> None:
        assert topo.edge is not None
        self.edge = topo.edge.sip
        self.work = work / "callers"
        self.work.mkdir()
        self.port = free_port()
        _cli(topo, "device", "add", "--app", app_id, "caller", "--password", "caller-pw")
        auth = "[authentication username=caller password=caller-pw]"
        self.numbers = [f"0902{i:06d}" for i in range(count)]
        (self.work / "calls.csv").write_text("SEQUENTIAL\n" + "".join(
            f"caller;caller-pw;{auth};{n};\n" for n in self.numbers))
        # The edge record-routes: in-dialog requests carry its Route (RFC 3261 §12.2.1.1).
        src = Path(scenario("uac_call_logged.xml")).read_text().replace("@TALK_MS@", "1500")
        src = src.replace("CSeq: 2 ACK\n", "CSeq: 2 ACK\n[routes]\n")
        src = src.replace("CSeq: 3 BYE\n", "CSeq: 3 BYE\n[routes]\n")
        (self.work / "uac.xml").write_text(src)
        self.proc: subprocess.Popen[bytes] | None = None

    def call(self, rate: int) -> None:
        self.proc = subprocess.Popen(
            ["sipp", self.edge, "-inf", str(self.work / "calls.csv"), "-i", "127.0.0.1",
             "-p", str(self.port), "-mp", str(free_port()), "-sf", str(self.work / "uac.xml"),
             "-r", str(rate), "-m", str(len(self.numbers)), "-trace_logs", "-timeout", "120",
             "-nostdin"],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def logged(self, what: str) -> set[str]:
        return sipp_logged(self.work, what)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Subscriber:
    """The app's event stream of one node, read in a thread."""

    def __init__(self, node: Node, app_id: str, secret: str) -> None:
        self.ws: ClientConnection = connect(
            f"ws://{node.http.removeprefix('http://')}/oapi/v1/events/ws",
            additional_headers=_headers(app_id, secret), open_timeout=10, compression=None)
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                msg = json.loads(raw)
                if msg["type"] not in ("hello", "ping", "gap"):
                    self.events.append(msg)
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.ws.close()
        self.thread.join(5)


CALLS = 60
RATE = 6  # calls/s: ten seconds of load, about nine calls up at any time


def test_kill_9_of_a_node_under_load(
    topology: Topology, audio: dict[str, Path], tmp_path: Path,
) -> None:
    assert topology.edge is not None
    survivor, victim = topology.nodes
    carrier_port = free_port()
    app_id, secret = _app(topology, carrier_port)
    carrier = _carrier(tmp_path, carrier_port, audio["tone440_pcmu"])
    callers = Callers(topology, app_id, tmp_path, CALLS)
    events = Subscriber(survivor, app_id, secret)
    try:
        callers.call(RATE)
        # Both nodes carry calls before one dies.
        wait_until(lambda: len(callers.logged("done")) >= 10, timeout=30)
        assert "call.started" in victim.log() and "call.started" in survivor.log()
        victim.kill()
        killed_at = time.time()
        done_before = callers.logged("done")
        assert callers.proc is not None
        callers.proc.wait(120)
        done = callers.logged("done")
        # Calls up on the killed node lose their BYE's answer; every call that started
        # after the kill (most of the load) completes through the survivor.
        lost = set(callers.numbers) - done
        assert len(lost) <= RATE * 4, sorted(lost)
        assert len(done) > len(done_before) + CALLS // 3
        # No completed call lost its CDR: each is in the shared database.
        rows = wait_until(lambda: (r := _cdrs(survivor, app_id)) and
                          done <= {c["callee"]["number"] for c in r} and r, timeout=20)
        by_number = {c["callee"]["number"]: c for c in rows}
        assert all(by_number[n]["status_detail"] == "SUCCESS" for n in done)
        # Both nodes wrote CDRs into the one table, and no two share a call id.
        ids = [c["call_id"] for c in rows]
        assert len(set(ids)) == len(ids)
        assert any(i in victim.log() for i in ids) and any(i in survivor.log() for i in ids)
        # The survivor's subscribers kept receiving, in order.
        wait_until(lambda: any(e["ts"] > killed_at for e in events.events), timeout=20)
        seqs = [e["seq"] for e in events.events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        log = topology.edge.log_path.read_text()
        assert "edge.node_down" in log
    finally:
        events.close()
        callers.stop()
        carrier.kill()
        carrier.wait()
