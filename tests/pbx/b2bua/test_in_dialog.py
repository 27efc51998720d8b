"""Requests inside an answered call: relayed INFO (DTMF), a relay the other side never
answers, and both sides hanging up at once."""

from __future__ import annotations

from tests.pbx.b2bua.harness import PBX_HOST, call_scene

DTMF = b"Signal=5\r\nDuration=160\r\n"


def test_info_is_relayed_to_the_other_leg_and_its_answer_comes_back() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    assert sc.alice.dialog is not None
    req = sc.alice.dialog.create_request("INFO", body=DTMF,
                                         content_type="application/dtmf-relay")
    sc.alice.ep.send_request(req, sc.alice.peer.__class__("udp", PBX_HOST, 5060), sc.wire.now)
    sc.wire.run(1)
    [info] = sc.bob.got("INFO")
    assert info.body == DTMF and info.headers.get("content-type") == "application/dtmf-relay"
    assert [d for d in sc.wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 200") if b" INFO" in d]


def test_a_relayed_request_the_other_side_never_answers_gets_408_on_its_own_transaction(
) -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    sc.wire.drop = lambda src, dst, data: dst == "192.0.2.2"  # bob is unreachable now
    assert sc.alice.dialog is not None
    req = sc.alice.dialog.create_request("INFO", body=DTMF,
                                         content_type="application/dtmf-relay")
    sc.alice.ep.send_request(req, sc.alice.peer.__class__("udp", PBX_HOST, 5060),
                             sc.wire.now)
    sc.wire.run(40)
    # The 408 answers alice's INFO (her Via and branch, her CSeq), not the INFO tongdai
    # forwarded, so it matches her transaction.
    sent = sc.wire.sent("192.0.2.1", PBX_HOST, "INFO")[0]  # then its retransmissions
    via = next(line for line in sent.split(b"\r\n") if line.lower().startswith(b"via:"))
    branch = via.split(b"branch=")[1].split(b";")[0]
    [resp] = sc.wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 408")
    assert branch in resp and b"CSeq: 2 INFO" in resp


def test_both_sides_hanging_up_at_once_get_their_200_and_no_bye_back() -> None:
    sc = call_scene(latency=0.05)
    sc.alice.call("102")
    sc.wire.run(3)
    sc.alice.bye()
    sc.bob.bye()
    sc.wire.run(5)
    assert not sc.alice.got("BYE") and not sc.bob.got("BYE")
    assert not sc.wire.sent(PBX_HOST, "192.0.2.2", "BYE")
    [cdr] = sc.node.cdrs
    assert cdr.status_detail == "SUCCESS"
