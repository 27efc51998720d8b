"""No reflection: responses go to the packet's real source, never where its Via points.

A running tongdai (the CLI's ``serve``, on uvloop as deployed) gets forged requests over
real loopback sockets. ``127.0.0.9`` plays the victim a forged Via names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.e2e.conftest import Server
from tests.transport.peers import TcpPeer, branch, finals, request, udp_collect, udp_socket
from tests.transport.running import tongdai

from tongdai.sip.message import Response
from tongdai.sip.parser import parse_message

pytestmark = pytest.mark.e2e  # starts tongdai as `tongdai serve` does

VICTIM = "127.0.0.9"
PASSWORD = "reflect-pw-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with tongdai(tmp_path_factory.mktemp("reflection"), devices={"alice": PASSWORD}) as srv:
        yield srv


def _forged(method: str, sender: int, victim_port: int, received: str = VICTIM) -> bytes:
    via = (f"SIP/2.0/UDP 127.0.0.1:{sender};branch={branch()};received={received}"
           f";rport={victim_port}")
    return request(method, via=via)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_a_forged_via_sends_nothing_to_the_address_it_names(server: Server, method: str) -> None:
    victim = udp_socket(VICTIM)
    sender = udp_socket()
    try:
        victim_port = victim.getsockname()[1]
        sender.sendto(_forged(method, sender.getsockname()[1], victim_port),
                      ("127.0.0.1", server.sip_port))
        # Long enough for the first Timer G retransmissions of an unacknowledged 407.
        got = udp_collect(sender, 2.5)
        assert udp_collect(victim, 0.2) == []
        assert finals(got), f"the real sender got no final response: {got!r}"
        for resp in (parse_message(d) for d in got):
            assert isinstance(resp, Response)
            via = resp.top_via.params
            assert via["received"] == "127.0.0.1"
            assert via["rport"] == str(sender.getsockname()[1])
    finally:
        victim.close()
        sender.close()


@pytest.mark.parametrize("received", ["evil.example", "not-an-ip", "::1"])
def test_a_via_received_that_is_no_address_is_answered_and_timers_go_on(
    server: Server, received: str,
) -> None:
    sender = udp_socket()
    try:
        port = sender.getsockname()[1]
        sender.sendto(_forged("OPTIONS", port, 5060, received), ("127.0.0.1", server.sip_port))
        (ok,) = finals(udp_collect(sender, 1.0))
        assert ok.status == 200
        # The INVITE's final response goes unacknowledged: Timer G must retransmit it.
        sender.sendto(_forged("INVITE", port, 5060, received), ("127.0.0.1", server.sip_port))
        repeats = finals(udp_collect(sender, 2.0))
        assert len(repeats) >= 2 and len({r.status for r in repeats}) == 1
    finally:
        sender.close()
    tcp = TcpPeer(("127.0.0.1", server.sip_port))
    try:
        via = f"SIP/2.0/TCP {tcp.local};branch={branch()};received={received};rport=9"
        tcp.send(request("OPTIONS", via=via))
        assert tcp.response().status == 200
        assert tcp.register("alice", PASSWORD) == 200  # the same connection, still up
    finally:
        tcp.close()
    assert "Traceback" not in server.log()
