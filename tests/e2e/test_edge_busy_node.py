"""The Kamailio edge of deploy/kamailio in front of a busy node, one that answers a
REGISTER after the edge's 1.5 s transaction timer (fr_timer) but answers every probe:
the late 200 reaches the device, the REGISTER is not moved to the other node, and
both nodes stay up. The nodes are two UDP sockets of this test (only Kamailio needed)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.conftest import free_port

from tongdai.deploy.edge import Edge
from tongdai.sip.message import Request, Response, make_response, serialize
from tongdai.sip.parser import parse_message


def _marks() -> list[pytest.MarkDecorator]:
    why = "" if shutil.which("kamailio") and shutil.which("kamcmd") else "kamailio is missing"
    if os.environ.get("CI") and why:
        raise RuntimeError(f"the edge tests cannot run in CI: {why}")
    return [pytest.mark.e2e, pytest.mark.skipif(bool(why), reason=why or "-")]


pytestmark = _marks()

LATE = 2.5  # seconds: past the edge's fr_timer (1.5 s)


class BusyNode:
    """Answers OPTIONS at once and REGISTER ``LATE`` seconds after it arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.registers: list[str] = []  # Call-IDs, retransmissions included
        self._due: list[tuple[float, Request, tuple[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for item in [d for d in self._due if d[0] <= now]:
                self._due.remove(item)
                self._answer(item[1], item[2])
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            msg = parse_message(data)
            if not isinstance(msg, Request):
                continue
            if msg.method == "REGISTER":
                self.registers.append(msg.call_id)
                self._due.append((now + LATE, msg, addr))
            else:
                self._answer(msg, addr)

    def _answer(self, req: Request, addr: tuple[str, int]) -> None:
        resp = make_response(req, 200, to_tag="node",
                             headers=[("x-node", str(self.port))])
        self.sock.sendto(serialize(resp), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def nodes() -> Iterator[list[BusyNode]]:
    started = [BusyNode(), BusyNode()]
    try:
        yield started
    finally:
        for n in started:
            n.close()


@pytest.fixture
def edge(tmp_path: Path, nodes: list[BusyNode]) -> Iterator[Edge]:
    e = Edge(host="127.0.0.1", port=free_port(), ws_port=free_port(),
             run_dir=tmp_path / "edge", nodes=[f"127.0.0.1:{n.port}" for n in nodes])
    e.start()
    try:
        e.wait_active(2)
        yield e
    finally:
        e.stop()


def _register(edge: Edge) -> Response:
    """One REGISTER from a device on UDP; the first final response to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dev:
        dev.bind(("127.0.0.1", 0))
        port = dev.getsockname()[1]
        req = (f"REGISTER sip:tongdai.invalid SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:alice@tongdai.invalid>;tag=a1\r\n"
               f"To: <sip:alice@tongdai.invalid>\r\nCall-ID: {secrets.token_hex(8)}@dev\r\n"
               f"CSeq: 1 REGISTER\r\nContact: <sip:alice@127.0.0.1:{port}>\r\n"
               f"Expires: 60\r\nContent-Length: 0\r\n\r\n")
        dev.sendto(req.encode(), (edge.host, edge.port))
        dev.settimeout(15)
        while True:
            resp = parse_message(dev.recv(65535))
            if isinstance(resp, Response) and resp.status >= 200:
                return resp


def test_a_late_answer_reaches_the_device_and_the_node_stays_up(
        edge: Edge, nodes: list[BusyNode]) -> None:
    resp = _register(edge)
    assert resp.status == 200, resp.status
    call_id = resp.call_id
    saw = [n.port for n in nodes if call_id in n.registers]
    assert saw == [int(resp.headers.get("x-node") or 0)]  # one node, and not moved
    assert len(edge.active()) == 2
    log = edge.log_path.read_text()
    assert "edge.node_down" not in log and "edge.failover" not in log
