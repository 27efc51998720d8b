"""1,100 silent TCP connections against a tongdai limited to 1,024 file descriptors.

Before the caps, the flood took every descriptor: the HTTP API stopped answering and
SIP over TCP was reset. Now the caps (defaults: half the descriptors in all, 64 per
address; the oldest silent connection makes room for a new one) keep both working.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.request
from pathlib import Path

import pytest
from tests.transport.peers import TcpPeer
from tests.transport.running import tongdai

pytestmark = pytest.mark.e2e  # starts tongdai as `tongdai serve` does

PASSWORD = "flood-pw-1"
ATTEMPTS = 1100
SOURCES = 40  # 127.0.1.1 .. 127.0.1.40 (all loopback) and one more over its own cap


def _flood(port: int) -> list[socket.socket]:
    held = []
    for i in range(ATTEMPTS):
        # The first 100 from one address (over its cap), then 40 addresses in turn.
        source = ("127.0.1.99" if i < 100 else f"127.0.1.{1 + i % SOURCES}", 0)
        with contextlib.suppress(OSError):  # refused or reset: what a capped server may do
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2,
                                                 source_address=source))
    return held


def test_a_flood_of_silent_connections_leaves_http_and_sip_working(tmp_path: Path) -> None:
    with tongdai(tmp_path, nofile=1024, devices={"alice": PASSWORD}) as srv:
        assert srv.proc is not None
        flood = _flood(srv.sip_port)
        try:
            fds = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
            assert fds < 1024 - 200, f"the server holds {fds} of its 1024 descriptors"
            with urllib.request.urlopen(f"{srv.http}/openapi.json", timeout=5) as resp:
                assert resp.status == 200
            phone = TcpPeer(("127.0.0.1", srv.sip_port), "127.0.0.2")
            try:
                assert phone.register("alice", PASSWORD) == 200
                assert phone.options() == 200
            finally:
                phone.close()
        finally:
            for s in flood:
                s.close()
        log = srv.log()
        assert "Too many open files" not in log and "Traceback" not in log
        assert "tcp.refused" in log and "reason=per_source_cap" in log
        assert "tcp.evicted" in log
