"""Slow, silent and countless TCP connections, against a running tongdai on loopback.

The server runs with short timeouts and small caps; every 127.x address is loopback, so
each test plays several source addresses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tests.e2e.conftest import Server
from tests.transport.peers import TcpPeer
from tests.transport.running import tongdai

pytestmark = pytest.mark.e2e  # starts tongdai as `tongdai serve` does

READ_TIMEOUT = 1.0
IDLE_TIMEOUT = 3.0
PER_SOURCE = 4
MAX_CONNECTIONS = 10
PASSWORD = "tcp-limits-pw-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tongdai(
        tmp_path_factory.mktemp("tcp"), devices={"alice": PASSWORD, "bob": PASSWORD},
        tcp_read_timeout=str(READ_TIMEOUT), tcp_idle_timeout=str(IDLE_TIMEOUT),
        tcp_max_per_source=str(PER_SOURCE), tcp_max_connections=str(MAX_CONNECTIONS),
    ) as srv:
        yield srv


class Peers:
    """Opens connections to the server and closes them all after the test."""

    def __init__(self, server: Server) -> None:
        self.addr = ("127.0.0.1", server.sip_port)
        self.opened: list[TcpPeer] = []

    def __call__(self, source: str = "127.0.0.1") -> TcpPeer:
        peer = TcpPeer(self.addr, source)
        self.opened.append(peer)
        return peer

    def close(self) -> None:
        for p in self.opened:
            p.close()
        time.sleep(0.3)  # the server sees them go and frees their places


@pytest.fixture
def peers(server: Server) -> Iterator[Peers]:
    p = Peers(server)
    try:
        yield p
    finally:
        p.close()


def _closed_after(peer: TcpPeer, at_most: float) -> float:
    start = time.monotonic()
    assert peer.closed_by_server(at_most), f"still open after {at_most} s"
    return time.monotonic() - start


HALF = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKhalf\r\nMax-Forwards: 70\r\n")


def test_a_half_sent_message_is_closed_after_the_read_timeout(peers: Peers) -> None:
    slow = peers("127.0.0.2")
    assert slow.options() == 200  # a real peer first: a message then half of another
    slow.send(HALF)
    took = _closed_after(slow, READ_TIMEOUT + 2)
    assert took >= READ_TIMEOUT * 0.7


def test_a_connection_that_sends_nothing_is_closed_after_the_read_timeout(
    peers: Peers,
) -> None:
    silent = peers("127.0.0.2")
    pinging = peers("127.0.0.2")
    start = time.monotonic()
    while time.monotonic() - start < READ_TIMEOUT * 0.7:
        pinging.send(b"\r\n\r\n")  # keep-alives alone are not a message
        time.sleep(0.2)
    assert _closed_after(silent, READ_TIMEOUT + 2) > 0
    assert pinging.closed_by_server(READ_TIMEOUT + 2)


def test_a_message_trickled_a_byte_at_a_time_is_closed(peers: Peers) -> None:
    slow = peers("127.0.0.2")
    start = time.monotonic()
    with pytest.raises(OSError):  # reset by the server while we still write
        for byte in HALF * 4:
            slow.send(bytes([byte]))
            time.sleep(0.05)
    assert time.monotonic() - start < READ_TIMEOUT + 2.5


def test_a_busy_connection_outlives_the_read_timeout(peers: Peers) -> None:
    peer = peers("127.0.0.2")
    assert peer.options() == 200
    time.sleep(READ_TIMEOUT * 2)
    assert peer.options() == 200


def test_an_idle_connection_is_closed_unless_it_carries_a_registration(
    peers: Peers,
) -> None:
    idle = peers("127.0.0.5")
    assert idle.options() == 200
    registered = peers("127.0.0.6")
    assert registered.register("alice", PASSWORD) == 200
    took = _closed_after(idle, IDLE_TIMEOUT + 2)
    assert took >= IDLE_TIMEOUT * 0.7
    time.sleep(1.5)  # the registered one is now well past the idle timeout too
    assert registered.options() == 200


def test_connections_over_the_per_source_cap_are_refused_other_sources_still_work(
    peers: Peers,
) -> None:
    held = [peers("127.0.0.3") for _ in range(PER_SOURCE)]
    for p in held:
        assert p.options() == 200
    extra = peers("127.0.0.3")
    assert _closed_after(extra, 0.5) < 0.5  # at once, not after a timeout
    other = peers("127.0.0.4")
    assert other.options() == 200
    for p in held:
        assert p.options() == 200


def test_at_the_global_cap_a_new_connection_replaces_the_oldest_silent_one(
    peers: Peers,
) -> None:
    silent = [peers(f"127.0.0.{10 + i // PER_SOURCE}") for i in range(MAX_CONNECTIONS)]
    time.sleep(0.2)
    fresh = peers("127.0.0.20")
    assert fresh.register("bob", PASSWORD) == 200
    assert silent[0].closed_by_server(0.5)
    assert not silent[-1].closed_by_server(0.1)


def test_at_the_global_cap_with_every_connection_busy_a_new_one_is_refused(
    peers: Peers,
) -> None:
    busy = [peers(f"127.0.0.{30 + i // PER_SOURCE}") for i in range(MAX_CONNECTIONS)]
    for p in busy:
        assert p.options() == 200
    refused = peers("127.0.0.40")
    assert _closed_after(refused, 0.5) < 0.5
    for p in busy:
        assert p.options() == 200
