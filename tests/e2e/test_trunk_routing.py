"""Outbound routing over several trunks with real carriers (SIPp) and a real phone.

One app, three trunks: ``down`` (priority 0) and ``up`` (priority 1) serve every
number, ``hcmc`` serves only Ho Chi Minh City landlines (028). A mobile goes to
``down`` first and, when that carrier answers 503, to ``up``: the caller hears one
call and the app gets one CDR.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.baresip_ctl import Baresip
from tests.e2e.conftest import (
    Phones,
    Server,
    free_port,
    make_server,
    scenario,
    wait_process,
    wait_until,
)

pytestmark = pytest.mark.e2e


class Routing:
    def __init__(self, server: Server, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.app_id: str = server.cli("app", "create", "routing")["app_id"]
        server.cli("device", "add", "--app", self.app_id, "alice", "--password",
                   "alice-secret-pw", "--extension", "101")
        self.ports = {name: free_port() for name in ("down", "up", "hcmc")}
        server.cli("trunk", "add", "--app", self.app_id, "down", "--host", "127.0.0.1",
                   "--port", str(self.ports["down"]))
        server.cli("trunk", "add", "--app", self.app_id, "up", "--host", "127.0.0.1",
                   "--port", str(self.ports["up"]), "--priority", "1")
        server.cli("trunk", "add", "--app", self.app_id, "hcmc", "--host", "127.0.0.1",
                   "--port", str(self.ports["hcmc"]), "--match", "028", "--priority", "5")

    def carrier(self, trunk: str, scen: str, audio: Path | None = None
                ) -> subprocess.Popen[bytes]:
        src = Path(scenario(scen)).read_text().replace("@RING_MS@", "300")
        if audio is not None:
            src = src.replace("@AUDIO@", str(audio))
        path = self.tmp / f"{trunk}-{time.monotonic_ns()}.xml"
        path.write_text(src)
        return subprocess.Popen(
            ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.ports[trunk]),
             "-mp", str(free_port()), "-m", "1", "-timeout", "30", "-nostdin"],
            cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def silent(self, trunk: str) -> socket.socket:
        """A carrier that answers nothing: a socket on the trunk's port, to see that no
        INVITE reaches it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", self.ports[trunk]))
        sock.settimeout(1.0)
        return sock

    def cdrs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.server.cli("cdr", "list", "--app", self.app_id)
        return result

    def phone(self, phones: Phones) -> Baresip:
        p = phones.start(f"alice-{time.monotonic_ns()}")
        p.add_account("alice", "alice-secret-pw", self.server.sip)
        p.ctl.wait_event("REGISTER_OK", 10)
        return p

    def dial(self, phone: Baresip, number: str) -> None:
        res = phone.ctl.cmd("dial", f"sip:{number}@{self.server.sip}")
        assert res.get("ok"), res

    def expect(self, phone: Baresip, event: str, timeout: float = 15) -> None:
        try:
            phone.ctl.wait_event(event, timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- tongdai log ---\n{self.server.log()[-4000:]}"
                                 ) from None


@pytest.fixture(scope="module")
def routing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routing]:
    tmp = tmp_path_factory.mktemp("routing")
    server = make_server(tmp, ring_timeout="8", media_timeout="4")
    server.start()
    try:
        yield Routing(server, tmp)
    finally:
        server.stop()


def _received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65535)
    except TimeoutError:
        return b""


def test_a_carrier_answering_503_fails_over_to_the_next_trunk(
    routing: Routing, phones: Phones, audio: dict[str, Path]
) -> None:
    before = len(routing.cdrs())
    down = routing.carrier("down", "uas_503.xml")
    up = routing.carrier("up", "uas_answer.xml", audio["tone1000_pcmu"])
    alice = routing.phone(phones)
    routing.dial(alice, "0901234567")
    routing.expect(alice, "CALL_ESTABLISHED")
    time.sleep(1.5)
    alice.ctl.cmd("hangup")
    assert wait_process(down) == 0  # it got the INVITE, answered 503 and got its ACK
    assert wait_process(up) == 0  # it got a fresh INVITE, answered, and got the BYE
    rows = wait_until(lambda: (r := routing.cdrs()) and len(r) > before and r, 20)
    time.sleep(1)
    rows = routing.cdrs()
    assert len(rows) == before + 1  # one call, one CDR
    cdr = rows[0]
    assert cdr["status_detail"] == "SUCCESS"
    assert cdr["class"] == "trunking" and cdr["direction"] == "from_ab"
    assert cdr["callee"] == {"number": "0901234567", "type": "realnumber"}
    assert cdr["billing_seconds"] >= 1
    assert "call.failover" in routing.server.log()


def test_a_busy_number_does_not_fail_over(routing: Routing, phones: Phones) -> None:
    before = len(routing.cdrs())
    down = routing.carrier("down", "uas_busy.xml")
    up = routing.silent("up")
    try:
        alice = routing.phone(phones)
        routing.dial(alice, "0907654321")
        routing.expect(alice, "CALL_CLOSED")
        assert wait_process(down) == 0
        assert _received(up) == b""  # 486 is about the number: the next trunk is not asked
    finally:
        up.close()
    rows = wait_until(lambda: (r := routing.cdrs()) and len(r) > before and r, 20)
    assert rows[0]["status_detail"] == "BUSY"
    assert rows[0]["callee"]["number"] == "0907654321"


def test_the_longest_matching_prefix_goes_first(
    routing: Routing, phones: Phones, audio: dict[str, Path]
) -> None:
    before = len(routing.cdrs())
    hcmc = routing.carrier("hcmc", "uas_answer.xml", audio["tone1000_pcmu"])
    down = routing.silent("down")
    try:
        alice = routing.phone(phones)
        routing.dial(alice, "02873019555")
        routing.expect(alice, "CALL_ESTABLISHED")
        time.sleep(1)
        alice.ctl.cmd("hangup")
        assert wait_process(hcmc) == 0
        assert _received(down) == b""
    finally:
        down.close()
    rows = wait_until(lambda: (r := routing.cdrs()) and len(r) > before and r, 20)
    assert rows[0]["status_detail"] == "SUCCESS"
    assert rows[0]["callee"]["number"] == "02873019555"
