"""RFC 3261 §17 transactions: every state, Timers A-M, UDP against TCP."""

from __future__ import annotations

import pytest
from test_transaction_harness import Net, answer, parse, request

from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import (
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTimeout,
)
from tongdai.sip.message import Request, Response, serialize
from tongdai.sip.transaction import ICT, IST, NICT, NIST, State, TimerConfig

NEVER = lambda direction, data: True  # noqa: E731 — the peer does not exist


def _times(net: Net, direction: str, start: str) -> list[float]:
    return [round(t, 6) for t, _ in net.sent(direction, start)]


def _server_txn(net: Net) -> tuple[str, Request]:
    (ev,) = net.take("b", RequestReceived)
    assert ev.txn is not None
    return ev.txn, ev.request


# Non-INVITE client (Figure 6) ----------------------------------------------


def test_timer_e_doubles_to_t2_and_timer_f_times_out() -> None:
    net = Net(drop=NEVER)
    key = net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.advance(100)
    # §17.1.2.2: E = T1, doubling, capped at T2 = 4; F = 64*T1 = 32 s.
    assert _times(net, "a>b", "OPTIONS") == [
        0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]
    (timeout,) = net.take("a", TransactionTimeout)
    assert timeout.txn == key and timeout.request.method == "OPTIONS"
    assert net.a.transaction_state(key) is None and net.a.live_transactions == 0


def test_timer_e_stays_at_t2_after_a_provisional() -> None:
    net = Net(drop=lambda d, data: d == "b>a" and not data.startswith(b"SIP/2.0 1"))
    key = net.a.send_request(request("MESSAGE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 180), net.now)
    net.flush()
    assert net.a.transaction_state(key) is State.PROCEEDING
    net.advance(20)
    # First E was armed at T1 before the 1xx; from then on every T2.
    assert _times(net, "a>b", "MESSAGE") == [0, 0.5, 4.5, 8.5, 12.5, 16.5]
    # The server resends its last provisional for each retransmission (§17.2.2).
    assert len(net.sent("b>a", "SIP/2.0 180")) == 6
    assert len(net.take("a", ResponseReceived)) == 6


def test_non_invite_completes_then_timers_k_and_j_over_udp() -> None:
    net = Net()
    key = net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    assert net.b.transaction_state(txn) is State.TRYING
    net.b.send_response(txn, answer(req, 200), net.now)
    net.flush()
    (resp,) = net.take("a", ResponseReceived)
    assert resp.txn == key and resp.response.status == 200
    assert net.a.transaction_state(key) is State.COMPLETED
    assert net.b.transaction_state(txn) is State.COMPLETED
    net.advance(4.99)
    assert net.a.transaction_state(key) is State.COMPLETED
    net.advance(5.0)  # Timer K = T4
    assert net.a.transaction_state(key) is None
    net.advance(31.99)
    assert net.b.transaction_state(txn) is State.COMPLETED
    net.advance(32.0)  # Timer J = 64*T1
    assert net.b.transaction_state(txn) is None
    assert net.a.get_timer() is None and net.b.get_timer() is None


def test_non_invite_over_tcp_has_no_e_and_zero_k_j() -> None:
    net = Net("tcp", drop=NEVER)
    net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.advance(100)
    assert _times(net, "a>b", "OPTIONS") == [0]  # no Timer E on a reliable transport
    assert len(net.take("a", TransactionTimeout)) == 1  # Timer F still runs

    net = Net("tcp")
    key = net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 200), net.now)
    net.flush()
    assert len(net.take("a", ResponseReceived)) == 1
    # Timers K and J are zero: both transactions ended with the final response.
    assert net.a.transaction_state(key) is None and net.b.transaction_state(txn) is None
    assert net.a.live_transactions == net.b.live_transactions == 0


def test_non_invite_server_absorbs_retransmissions() -> None:
    net = Net(drop=lambda d, data: d == "b>a")  # every response lost: a keeps trying
    net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.advance(1.5)  # two retransmissions while Trying: absorbed silently
    assert net.b.stats["retransmissions"] == 2 and net.sent("b>a", "SIP/2.0") == []
    net.b.send_response(txn, answer(req, 202), net.now)
    net.advance(7.5)  # each later retransmission (3.5, 7.5) gets the final again
    assert len(net.sent("b>a", "SIP/2.0 202")) == 1 + 2
    assert net.take("b", RequestReceived) == []  # the TU saw the request once


def test_client_absorbs_final_retransmissions() -> None:
    net = Net()
    net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 200), net.now)
    net.flush()
    (first,) = net.sent("b>a", "SIP/2.0 200")
    net.a.receive(first[1], net.pb, net.now)  # the same 200 again
    net.flush()
    assert len(net.take("a", ResponseReceived)) == 1


# INVITE client (Figure 5) ----------------------------------------------------


def test_timer_a_doubles_without_cap_and_timer_b_times_out() -> None:
    net = Net(drop=NEVER)
    key = net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.advance(100)
    assert _times(net, "a>b", "INVITE") == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    (timeout,) = net.take("a", TransactionTimeout)
    assert timeout.txn == key and net.now == 100 and net.a.live_transactions == 0


def test_invite_over_tcp_is_not_retransmitted() -> None:
    net = Net("tcp", drop=NEVER)
    net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.advance(31.9)
    assert net.take("a", TransactionTimeout) == []
    net.advance(32.0)
    assert _times(net, "a>b", "INVITE") == [0]
    assert len(net.take("a", TransactionTimeout)) == 1


def test_no_timeout_in_proceeding() -> None:
    # RFC 3261 §17.1.1.2: Timer B only matters in Calling; a ringing phone rings on.
    net = Net()
    key = net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 180), net.now)
    net.advance(300)
    assert net.a.transaction_state(key) is State.PROCEEDING
    assert net.take("a", TransactionTimeout) == []
    assert _times(net, "a>b", "INVITE") == [0]  # the 100 Trying stopped Timer A


def test_non_2xx_final_is_acked_in_the_transaction_then_timer_d() -> None:
    net = Net()
    key = net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 486), net.now)
    net.flush()
    (resp,) = [e for e in net.take("a", ResponseReceived) if e.response.status == 486]
    assert resp.txn == key
    (ack_wire,) = net.sent("a>b", "ACK")
    ack, invite = parse(ack_wire[1]), parse(net.sent("a>b", "INVITE")[0][1])
    assert isinstance(ack, Request) and isinstance(invite, Request)
    # §17.1.1.3: same branch and Request-URI, To with the response's tag, CSeq ACK.
    assert ack.top_via.branch == invite.top_via.branch and ack.uri == invite.uri
    assert ack.to_tag == "to-b" and ack.cseq == (1, "ACK")
    assert net.take("b", RequestReceived) == []  # the ACK ends in the server transaction
    assert net.a.transaction_state(key) is State.COMPLETED
    assert net.b.transaction_state(txn) is State.CONFIRMED
    net.advance(5.0)  # Timer I = T4
    assert net.b.transaction_state(txn) is None
    net.advance(31.99)
    assert net.a.transaction_state(key) is State.COMPLETED
    net.advance(32.0)  # Timer D
    assert net.a.transaction_state(key) is None


def test_retransmitted_non_2xx_is_re_acked_and_timer_g_doubles_to_t2() -> None:
    net = Net(drop=lambda d, data: d == "a>b" and data.startswith(b"ACK"))
    net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 603), net.now)
    net.advance(100)
    # §17.2.1: G = T1 doubling to T2 while waiting for the ACK; H = 64*T1.
    assert _times(net, "b>a", "SIP/2.0 603") == [
        0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5,
    ]
    assert len(net.sent("a>b", "ACK")) == 11  # the client ACKs every copy
    assert len([e for e in net.take("a", ResponseReceived) if e.response.status == 603]) == 1
    (timeout,) = net.take("b", TransactionTimeout)  # Timer H
    assert timeout.txn == txn and timeout.request.method == "INVITE"
    assert net.a.live_transactions == net.b.live_transactions == 0


def test_invite_server_over_tcp_no_g_and_zero_i() -> None:
    net = Net("tcp", drop=lambda d, data: d == "a>b" and data.startswith(b"ACK"))
    net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 404), net.now)
    net.advance(31.9)
    assert len(net.sent("b>a", "SIP/2.0 404")) == 1 and net.take("b", TransactionTimeout) == []
    net.advance(32)
    assert len(net.take("b", TransactionTimeout)) == 1

    net = Net("tcp")
    key = net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 404), net.now)
    net.flush()
    # Timers D and I are zero over TCP.
    assert net.a.transaction_state(key) is None and net.b.transaction_state(txn) is None


def test_invite_server_sends_100_and_resends_last_provisional() -> None:
    net = Net(drop=lambda d, data: d == "b>a")
    net.a.send_request(request("INVITE", extra=(("timestamp", "54"),)), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    (trying,) = net.sent("b>a", "SIP/2.0 100")
    assert trying[0] == 0 and b"Timestamp: 54" in trying[1]  # §8.2.6.1
    net.advance(0.5)  # a's retransmission → the 100 again
    assert len(net.sent("b>a", "SIP/2.0 100")) == 2
    net.b.send_response(txn, answer(req, 180), net.now)
    net.advance(1.5)
    assert len(net.sent("b>a", "SIP/2.0 180")) == 2  # sent, then resent for Timer A
    assert net.b.stats["retransmissions"] == 2


# 2xx: RFC 6026 Accepted, RFC 3261 §13.3.1.4 -----------------------------------


def _answered_invite(net: Net) -> tuple[str, str, Request, Response]:
    key = net.a.send_request(request("INVITE"), net.pb, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    ok = answer(req, 200)
    net.b.send_response(txn, ok, net.now)
    net.flush()
    return key, txn, req, ok


def test_2xx_is_retransmitted_until_the_ack_then_timers_l_and_m() -> None:
    net = Net(drop=lambda d, data: d == "a>b" and data.startswith(b"ACK") and net.now < 3)
    key, txn, req, ok = _answered_invite(net)
    (first,) = net.take("a", ResponseReceived)[-1:]
    assert first.response.status == 200 and not first.retransmission
    assert net.a.transaction_state(key) is State.ACCEPTED
    assert net.b.transaction_state(txn) is State.ACCEPTED
    ack = Request(method="ACK", uri="sip:bob@192.0.2.2:5060", headers=req.headers.copy())
    ack.headers.remove("via")
    ack.headers.set("cseq", "1 ACK")
    ack.headers.set("to", ok.headers.get("to") or "")
    net.a.send_stateless(ack, net.pb)  # the TU's ACK (lost while now < 3)
    net.advance(10)
    # 2xx at 0, 0.5, 1.5, 3.5 → the ACK re-sent for 0.5, 1.5 is lost, for 3.5 arrives.
    assert _times(net, "b>a", "SIP/2.0 200") == [0, 0.5, 1.5, 3.5]
    assert _times(net, "a>b", "ACK") == [0, 0.5, 1.5, 3.5]  # re-sent by the endpoint
    assert net.take("a", ResponseReceived) == []  # repeats absorbed, the TU ACKed once
    assert len(net.take("b", RequestReceived)) == 1  # the ACK that got through
    net.advance(31.99)
    assert net.a.transaction_state(key) is State.ACCEPTED
    assert net.b.transaction_state(txn) is State.ACCEPTED
    net.advance(32.0)  # Timers M and L = 64*T1
    assert net.a.transaction_state(key) is None and net.b.transaction_state(txn) is None
    assert net.take("b", TransactionTimeout) == []  # it was ACKed


def test_2xx_repeats_reach_a_tu_that_has_not_acked_and_no_ack_times_out() -> None:
    net = Net(t2=2.0)
    _answered_invite(net)
    net.take("a", ResponseReceived)
    net.advance(40)
    repeats = net.take("a", ResponseReceived)
    # 2xx every T1 doubling to T2 (=2 here) until L at 32 s.
    assert len(repeats) == len(_times(net, "b>a", "SIP/2.0 200")) - 1 == 17
    assert all(e.retransmission for e in repeats)
    (timeout,) = net.take("b", TransactionTimeout)  # §13.3.1.4: the TU should BYE
    assert timeout.request.method == "INVITE"


def test_after_the_ack_a_2xx_from_another_fork_still_reaches_the_tu() -> None:
    """Once our INVITE's 2xx is ACKed, Accepted lives on as a record: the same 2xx
    gets the same ACK; a 2xx with another To tag (a forking proxy's second answer)
    goes to the TU once as new, then as a repeat, until Timer M (RFC 6026 §7.2)."""
    net = Net()
    key, _, req, ok = _answered_invite(net)
    net.take("a", ResponseReceived)
    ack = Request(method="ACK", uri="sip:bob@192.0.2.2:5060", headers=req.headers.copy())
    ack.headers.remove("via")
    ack.headers.set("cseq", "1 ACK")
    ack.headers.set("to", ok.headers.get("to") or "")
    net.a.send_stateless(ack, net.pb)
    net.flush()
    assert net.a.transaction_state(key) is State.ACCEPTED
    acks = len(net.sent("a>b", "ACK"))

    net.a.receive(serialize(ok), net.pb, 1.0)  # the same 2xx again
    net.flush()
    assert len(net.sent("a>b", "ACK")) == acks + 1 and net.take("a", ResponseReceived) == []
    fork = answer(req, 200, tag="to-c")
    for repeat in (False, True):
        net.a.receive(serialize(fork), net.pb, 2.0)
        net.flush()
        (ev,) = net.take("a", ResponseReceived)
        assert ev.txn == key and ev.response.to_tag == "to-c" and ev.retransmission is repeat
    net.a.receive(serialize(answer(req, 180, tag="to-d")), net.pb, 3.0)  # ignored
    net.flush()
    assert net.take("a", ResponseReceived) == [] and net.a.stats["stray_responses"] == 0
    net.advance(32.0)
    assert net.a.transaction_state(key) is None and net.a.live_transactions == 0


def test_2xx_after_timer_m_is_a_stray_response() -> None:
    net = Net()
    _answered_invite(net)
    (ok,) = net.sent("b>a", "SIP/2.0 200")[:1]
    net.advance(33)
    net.take("a", ResponseReceived)
    net.a.receive(ok[1], net.pb, net.now)
    net.flush()
    (stray,) = net.take("a", StrayResponse)
    assert stray.response.status == 200 and stray.peer == net.pb
    assert net.a.stats["stray_responses"] == 1


# State tables ---------------------------------------------------------------


def test_tables_cover_every_peer_and_timer_input_in_every_live_state() -> None:
    from tongdai.sip.transaction import ENTRY_TIMERS, Input, Kind

    client_in = {Input.RESP_1XX, Input.RESP_2XX, Input.RESP_FINAL, Input.TRANSPORT_ERROR}
    server_in = {Input.REQUEST, Input.TRANSPORT_ERROR}
    for kind, table, inputs in (
        (Kind.ICT, ICT, client_in), (Kind.NICT, NICT, client_in),
        (Kind.IST, IST, {*server_in, Input.ACK}), (Kind.NIST, NIST, server_in),
    ):
        states = {s for s, _ in table}
        assert State.TERMINATED not in states
        for state in states:
            for inp in inputs:
                assert (state, inp) in table, (kind, state, inp)
            for timer in ENTRY_TIMERS.get((kind, state), ()):
                assert (state, timer) in table, (kind, state, timer)


def test_tu_mistakes_raise_local_protocol_error() -> None:
    net = Net()
    with pytest.raises(LocalProtocolError):
        net.b.send_response("s|nope|x:1", answer(request("OPTIONS"), 200), 0.0)
    key = net.a.send_request(request("OPTIONS"), net.pb, 0.0)
    with pytest.raises(LocalProtocolError, match="only an INVITE"):
        net.a.cancel(key, 0.0)
    net.flush()
    txn, req = _server_txn(net)
    net.b.send_response(txn, answer(req, 200), net.now)
    with pytest.raises(LocalProtocolError, match="Completed"):
        net.b.send_response(txn, answer(req, 500), net.now)
    bad = request("OPTIONS")
    bad.headers.set("cseq", "1 INFO")
    with pytest.raises(LocalProtocolError, match="CSeq"):
        net.a.send_request(bad, net.pb, 0.0)
    dup = request("OPTIONS")
    dup.headers.add("via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={key.split('|')[1]}")
    with pytest.raises(LocalProtocolError, match="already in use"):
        net.a.send_request(dup, net.pb, 0.0)


def test_timer_config_matches_rfc_table_4() -> None:
    from tongdai.sip.transaction import Input

    cfg = TimerConfig()
    udp = {t: cfg.duration(t, False) for t in Input if t.name.startswith("TIMER")}
    tcp = {t: cfg.duration(t, True) for t in Input if t.name.startswith("TIMER")}
    assert [udp[Input[f"TIMER_{x}"]] for x in "ABDEFGHIJKLM"] == [
        0.5, 32, 32, 0.5, 32, 0.5, 32, 5, 32, 5, 32, 32,
    ]
    assert [tcp[Input[f"TIMER_{x}"]] for x in "ABDEFGHIJKLM"] == [
        None, 32, 0, None, 32, None, 32, 0, 0, 0, 32, 32,
    ]


def test_stale_timer_entries_are_compacted() -> None:
    net = Net("tcp", drop=NEVER)
    for i in range(5000):
        net.a.send_request(request("OPTIONS", call_id=f"c{i}"), net.pb, 0.0)
    assert len(net.a._heap) == 5000  # Timer F each
    net.a.transport_failed(net.pb, 1.0)  # every transaction ends, its entry goes stale
    assert net.a.live_transactions == 0
    net.a.send_request(request("OPTIONS", call_id="last"), net.pb, 1.0)
    assert len(net.a._heap) == 1 and net.a.get_timer() == 33.0
