"""Which ACK ends the retransmission of our 2xx (RFC 3261 §13.2.2.4, §13.3.1.4, §17.2.3).

The ACK for a 2xx is its own transaction: it matches the INVITE it acknowledges by
Call-ID, the INVITE's CSeq number and the dialog's tags. Anything else in the dialog
is not that ACK: the 2xx keeps going out and, unacknowledged, times out.
"""

from __future__ import annotations

from tongdai.sip.endpoint import Endpoint
from tongdai.sip.events import RequestReceived, SipEvent, TransactionTimeout
from tongdai.sip.message import make_response
from tongdai.sip.peer import Peer
from tongdai.sip.transaction import State

US = "192.0.2.2"
CALLER = Peer("udp", "203.0.113.5", 40000)
INVITE_VIA = "SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKinvite1"


def _raw(method: str, via: str, *, cseq: int, to_tag: str = "", from_tag: str = "a1") -> bytes:
    to = f"<sip:bob@{US}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:bob@{US} SIP/2.0",
        f"Via: {via}",
        f"From: <sip:alice@example.com>;tag={from_tag}",
        f"To: {to}",
        "Call-ID: ack-1",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
    ]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def _drain(ep: Endpoint) -> list[SipEvent]:
    out = []
    while (ev := ep.next_event()) is not None:
        out.append(ev)
    return out


def _answered(cseq: int = 5) -> tuple[Endpoint, str]:
    """An endpoint that answered an INVITE (CSeq ``cseq``) with a 2xx tagged "us"."""
    ep = Endpoint(host=US, port=5060)
    ep.receive(_raw("INVITE", INVITE_VIA, cseq=cseq), CALLER, 0.0)
    (ev,) = _drain(ep)
    assert isinstance(ev, RequestReceived) and ev.txn is not None
    ep.send_response(ev.txn, make_response(ev.request, 200, to_tag="us"), 0.0)
    ep.datagrams_to_send()
    return ep, ev.txn


def _run(ep: Endpoint, until: float) -> tuple[int, list[SipEvent]]:
    """Fire timers until ``until``: (2xx retransmissions sent, events)."""
    sent, events = 0, []
    while (at := ep.get_timer()) is not None and at <= until:
        ep.handle_timer(at)
        sent += sum(1 for data, _ in ep.datagrams_to_send() if data.startswith(b"SIP/2.0 200"))
        events += _drain(ep)
    return sent, events


def _stray_acks() -> list[bytes]:
    new_branch = "SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKack2"
    return [
        # another CSeq number, the INVITE's own branch (as if it were its non-2xx ACK)
        _raw("ACK", INVITE_VIA, cseq=6, to_tag="us"),
        # another CSeq number, a branch of its own
        _raw("ACK", new_branch, cseq=4, to_tag="us"),
        # the right CSeq number but another dialog (To tag, From tag)
        _raw("ACK", new_branch, cseq=5, to_tag="them"),
        _raw("ACK", new_branch, cseq=5, to_tag="us", from_tag="x9"),
        # no To tag at all: an ACK for a 2xx always carries it (§13.2.2.4)
        _raw("ACK", new_branch, cseq=5),
    ]


def test_only_the_ack_with_the_invites_cseq_and_dialog_stops_the_2xx() -> None:
    for stray in _stray_acks():
        ep, txn = _answered()
        ep.receive(stray, CALLER, 0.2)
        assert ep.transaction_state(txn) is State.ACCEPTED
        # the ACK still reaches the transaction user, which ignores it too
        assert [type(e) for e in _drain(ep)] == [RequestReceived]
        sent, events = _run(ep, 40.0)
        assert sent >= 6, stray  # §13.3.1.4: T1, 2T1, 4T1, T2, T2, ... for 64*T1
        assert [type(e) for e in events] == [TransactionTimeout], stray


def test_the_real_ack_stops_the_2xx_with_either_branch() -> None:
    for via in (INVITE_VIA, "SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKack3"):
        ep, txn = _answered()
        ep.receive(_raw("ACK", via, cseq=5, to_tag="us"), CALLER, 0.2)
        assert [type(e) for e in _drain(ep)] == [RequestReceived]
        sent, events = _run(ep, 40.0)
        assert sent == 0 and events == []
        assert ep.transaction_state(txn) is None  # Timer L ended it quietly


def test_a_stray_ack_then_the_real_one() -> None:
    ep, _ = _answered()
    ep.receive(_raw("ACK", INVITE_VIA, cseq=9, to_tag="us"), CALLER, 0.1)
    sent, _ = _run(ep, 1.0)
    assert sent >= 1
    ep.receive(_raw("ACK", "SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKok", cseq=5,
                    to_tag="us"), CALLER, 1.2)
    _drain(ep)
    sent, events = _run(ep, 40.0)
    assert sent == 0 and events == []
