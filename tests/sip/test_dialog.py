"""RFC 3261 §12 dialogs, end to end over two endpoints, and their rules one by one."""

from __future__ import annotations

import pytest
from test_transaction_harness import A_HOST, B_HOST, Net, answer, parse, request

from tongdai.sip.dialog import Dialog, DialogState, addr_spec, dialog_id_of, is_loose
from tongdai.sip.errors import LocalProtocolError
from tongdai.sip.events import RequestReceived, ResponseReceived, TransactionTimeout
from tongdai.sip.message import Request, Response, make_response

RR_AT_B = ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]  # p2 is nearest to b


def _call(net: Net) -> tuple[Dialog, Dialog, Request, str]:
    """a INVITEs b through two record-routing proxies; both build their dialog."""
    invite = request("INVITE", body=b"v=0\r\n", extra=(("content-type", "application/sdp"),))
    key = net.a.send_request(invite, net.pb, 0.0)
    net.flush()
    (ev,) = net.take("b", RequestReceived)
    req: Request = ev.request
    for rr in RR_AT_B:  # as the proxies would have added them
        req.headers.add("record-route", rr)
    ok = answer(req, 200)
    for rr in req.headers.get_all("record-route"):
        ok.headers.add("record-route", rr)  # §12.1.1: the UAS copies Record-Route
    uas = Dialog.from_uas(req, ok, local_contact=f"<sip:bob@{B_HOST}:5060>")
    net.b.send_response(ev.txn, ok, net.now)
    net.flush()
    (resp,) = [e for e in net.take("a", ResponseReceived) if e.response.status == 200]
    uac = Dialog.from_uac(invite, resp.response)
    return uac, uas, invite, key


def test_dialog_ids_tags_and_route_sets() -> None:
    net = Net()
    uac, uas, _, _ = _call(net)
    assert uac.id == ("call-1", "from-a", "to-b") and uas.id == ("call-1", "to-b", "from-a")
    assert uac.state is DialogState.CONFIRMED and uas.state == "confirmed"
    # §12.1.1 in order at the UAS, §12.1.2 reversed at the UAC.
    assert uas.route_set == RR_AT_B and uac.route_set == RR_AT_B[::-1]
    assert uac.remote_target == f"sip:bob@{B_HOST}:5060"
    assert uas.remote_target == f"sip:alice@{A_HOST}:5060"
    assert uac.local_seq == 1 and uac.remote_seq is None
    assert uas.remote_seq == 1 and uas.local_seq is None
    assert uac.local_uri == f"sip:alice@{A_HOST}" and uac.remote_uri == f"sip:bob@{B_HOST}"
    assert not uac.secure
    assert uac.next_hop() == "sip:p1.example.net;lr" and uas.next_hop() == "sip:p2.example.net;lr"


def test_2xx_ack_end_to_end_stops_the_2xx_retransmissions() -> None:
    net = Net()
    uac, uas, _, _ = _call(net)
    ack = uac.create_ack(1)
    assert ack.uri == f"sip:bob@{B_HOST}:5060"  # loose routing: the remote target
    assert ack.headers.get_all("route") == RR_AT_B[::-1]
    assert ack.cseq == (1, "ACK") and ack.to_tag == "to-b" and ack.from_tag == "from-a"
    net.a.send_stateless(ack, net.pb)
    net.flush()
    (got,) = net.take("b", RequestReceived)
    assert got.txn is None and got.request.method == "ACK"
    assert dialog_id_of(got.request, uas=True) == uas.id
    assert uas.receive_request(got.request)
    sent_ack = parse(net.sent("a>b", "ACK")[0][1])
    invite = parse(net.sent("a>b", "INVITE")[0][1])
    assert isinstance(sent_ack, Request) and isinstance(invite, Request)
    assert sent_ack.top_via.branch != invite.top_via.branch  # the 2xx ACK is its own
    net.advance(40)
    assert len(net.sent("b>a", "SIP/2.0 200")) == 1  # no retransmission of the 2xx
    assert net.a.live_transactions == net.b.live_transactions == 0


def test_in_dialog_requests_and_cseq_rules() -> None:
    net = Net()
    uac, uas, _, _ = _call(net)
    net.a.send_stateless(uac.create_ack(1), net.pb)
    net.flush()
    net.take("b", RequestReceived)
    # b hangs up: its first request starts its own CSeq space.
    bye = uas.create_request("BYE")
    assert bye.cseq == (1, "BYE") and uas.local_seq == 1
    assert bye.uri == f"sip:alice@{A_HOST}:5060"
    assert bye.headers.get_all("route") == RR_AT_B
    assert bye.from_tag == "to-b" and bye.to_tag == "from-a"
    assert "contact" not in bye.headers  # not a target refresh
    bkey = net.b.send_request(bye, net.pa, net.now)
    net.flush()
    (ev,) = net.take("a", RequestReceived)
    assert dialog_id_of(ev.request, uas=True) == uac.id
    assert uac.receive_request(ev.request) and uac.remote_seq == 1
    net.a.send_response(ev.txn, make_response(ev.request, 200), net.now)
    net.flush()
    (ok,) = net.take("b", ResponseReceived)
    assert ok.txn == bkey and dialog_id_of(ok.response, uas=False) == uas.id
    uac.terminate()
    assert uac.state is DialogState.TERMINATED
    with pytest.raises(LocalProtocolError, match="terminated"):
        uac.create_request("INFO")


def test_remote_cseq_lower_is_refused_and_ack_cancel_do_not_count() -> None:
    _, uas, _, _ = _call(Net())
    info = uas.create_request("INFO")  # any in-dialog request serves as a shape
    for num, method, ok in (
        (5, "INFO", True), (5, "INFO", True), (4, "INFO", False), (1, "ACK", True),
        (6, "BYE", True), (3, "CANCEL", True),
    ):
        req = Request(method=method, uri=info.uri, headers=info.headers.copy())
        req.headers.set("cseq", f"{num} {method}")
        assert uas.receive_request(req) is ok, (num, method)
    assert uas.remote_seq == 6


def test_target_refresh_by_reinvite_and_its_2xx() -> None:
    uac, uas, _, _ = _call(Net())
    reinvite = uac.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq == (2, "INVITE")
    assert reinvite.headers.get("contact") == f"<sip:alice@{A_HOST}:5060>"  # §12.2.1.1
    assert reinvite.content_type == "application/sdp" and reinvite.body == b"v=0\r\n"
    reinvite.headers.set("contact", "<sip:alice@198.51.100.7:5062;transport=tcp>")
    assert uas.receive_request(reinvite)
    assert uas.remote_target == "sip:alice@198.51.100.7:5062;transport=tcp"
    ok = make_response(reinvite, 200)
    ok.headers.add("contact", "\"Bob\" <sip:bob@198.51.100.8>;expires=60")
    uac.update_from_response(ok)
    assert uac.remote_target == "sip:bob@198.51.100.8" and uac.state is DialogState.CONFIRMED
    assert uac.route_set == RR_AT_B[::-1]  # a confirmed dialog keeps its route set
    bad = make_response(reinvite, 488)
    uac.update_from_response(bad)
    assert uac.state is DialogState.CONFIRMED  # a rejected re-INVITE changes nothing
    uac.update_from_response(make_response(uac.create_request("INFO"), 481))
    assert uac.state is DialogState.TERMINATED  # §12.2.1.2


def test_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    invite = request("INVITE")
    ringing = answer(invite, 180)
    ringing.headers.add("record-route", "<sip:early.example.net;lr>")
    ringing.headers.set("contact", "<sip:bob@early.example.net>")
    d = Dialog.from_uac(invite, ringing)
    assert d.state is DialogState.EARLY and d.route_set == ["<sip:early.example.net;lr>"]
    ok = answer(invite, 200)
    ok.headers.add("record-route", "<sip:q1.example.net;lr>, <sip:q2.example.net;lr>")
    d.update_from_response(ok)
    assert d.state is DialogState.CONFIRMED
    assert d.route_set == ["<sip:q2.example.net;lr>", "<sip:q1.example.net;lr>"]  # §13.2.2.4
    assert d.remote_target == f"sip:bob@{B_HOST}:5060"

    failed = Dialog.from_uac(invite, ringing)
    failed.update_from_response(answer(invite, 486))
    assert failed.state is DialogState.TERMINATED  # §12.3: non-2xx ends the early dialog

    uas = Dialog.from_uas(invite, answer(invite, 183), local_contact="<sip:b@x>")
    assert uas.state is DialogState.EARLY
    uas.confirm()
    assert uas.state is DialogState.CONFIRMED


def test_strict_router_first_in_route_set() -> None:
    invite = request("INVITE")
    ok = answer(invite, 200)
    ok.headers.add("record-route", "<sip:strict.example.net>")  # no lr: RFC 2543 router
    d = Dialog.from_uac(invite, ok)
    bye = d.create_request("BYE")
    # §12.2.1.1: Request-URI is the strict router, the remote target goes last in Route.
    assert bye.uri == "sip:strict.example.net"
    assert bye.headers.get_all("route") == [f"<sip:bob@{B_HOST}:5060>"]
    assert not is_loose("sip:strict.example.net") and is_loose("sip:x;LR")


def test_dialog_creation_errors_and_sips() -> None:
    invite = request("INVITE", uri="sips:bob@example.com")
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(invite, make_response(invite, 200), local_contact="<sip:b@x>")  # no tag
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(invite, make_response(invite, 100), local_contact="<sip:b@x>")
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 404, to_tag="t"))
    no_contact = request("INVITE", contact=None)
    with pytest.raises(LocalProtocolError, match="Contact"):
        Dialog.from_uas(no_contact, answer(no_contact, 200), local_contact="<sip:b@x>")
    d = Dialog.from_uac(invite, answer(invite, 200))
    assert d.secure
    with pytest.raises(LocalProtocolError):
        d.create_request("ACK")
    with pytest.raises(LocalProtocolError):
        d.create_request("CANCEL")
    # A 2xx without a To tag (RFC 2543 peer): null remote tag.
    untagged: Response = make_response(invite, 200)
    untagged.headers.add("contact", "<sip:old@example.com>")
    assert Dialog.from_uac(invite, untagged).remote_tag == ""


def test_addr_spec() -> None:
    assert addr_spec('"A <b>, c" <sip:a@b;lr>;tag=1') == "sip:a@b;lr"
    assert addr_spec("sip:a@b;tag=1") == "sip:a@b"
    assert addr_spec(' "Q\\"x" <sips:q@h:5061> ') == "sips:q@h:5061"
    assert addr_spec("<sip:unterminated@h") == "sip:unterminated@h"


def test_calls_set_up_and_torn_down_under_30_percent_loss() -> None:
    net = Net(loss=0.3, seed=7)
    invites: dict[str, Request] = {}
    uacs: dict[str, Dialog] = {}
    uas_dialogs: dict[tuple[str, str, str], Dialog] = {}
    acked: set[str] = set()
    byes_ok: set[str] = set()

    def bob(ev: object) -> None:
        if isinstance(ev, RequestReceived) and ev.request.method == "INVITE":
            assert ev.txn is not None
            ok = answer(ev.request, 200, tag=f"b-{ev.request.call_id}")
            d = Dialog.from_uas(ev.request, ok, local_contact=f"<sip:bob@{B_HOST}:5060>")
            uas_dialogs[d.id] = d
            net.b.send_response(ev.txn, ok, net.now)
        elif isinstance(ev, RequestReceived) and ev.request.method == "ACK":
            d = uas_dialogs[dialog_id_of(ev.request, uas=True)]
            assert d.receive_request(ev.request)
            acked.add(d.call_id)
        elif isinstance(ev, RequestReceived) and ev.request.method == "BYE":
            assert ev.txn is not None
            d = uas_dialogs[dialog_id_of(ev.request, uas=True)]
            assert d.receive_request(ev.request)
            d.terminate()
            net.b.send_response(ev.txn, make_response(ev.request, 200), net.now)

    def alice(ev: object) -> None:
        if isinstance(ev, ResponseReceived) and ev.response.status == 200:
            method = ev.response.cseq[1]
            if method == "INVITE" and not ev.retransmission:
                d = Dialog.from_uac(invites[ev.txn], ev.response)
                uacs[d.call_id] = d
                net.a.send_stateless(d.create_ack(1), net.pb)
                net.a.send_request(d.create_request("BYE"), net.pb, net.now)
            elif method == "BYE":
                byes_ok.add(ev.response.call_id)

    net.tu = {"a": alice, "b": bob}
    for i in range(30):
        inv = request("INVITE", call_id=f"call-{i}")
        invites[net.a.send_request(inv, net.pb, 0.0)] = inv
    net.advance(200)
    assert len(uacs) == 30 and acked == set(uacs) and byes_ok == set(uacs)
    assert all(d.state is DialogState.TERMINATED for d in uas_dialogs.values())
    assert all(d.local_seq == 2 for d in uacs.values())  # INVITE 1, BYE 2
    assert net.a.live_transactions == net.b.live_transactions == 0
    assert net.take("b", TransactionTimeout) == []
