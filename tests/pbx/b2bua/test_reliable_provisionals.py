"""RFC 3262 across the B2BUA: a carrier's reliable 180 (Require: 100rel, RSeq) gets its
PRACK in the early dialog, once per RSeq; a caller that supports 100rel gets its ringing
reliably, retransmitted until it PRACKs, and a PRACK that matches nothing gets 481."""

from __future__ import annotations

from tests.pbx.b2bua.harness import (
    PBX_HOST,
    Phone,
    Scene,
    Script,
    answer_after,
    call_scene,
    sdp,
)

from tongdai.pbx.b2bua.state import CallState
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request
from tongdai.sip.peer import Peer


def reliable_ringing(rseqs: tuple[int, ...] = (1,)) -> Script:
    def script(phone: Phone, req: Request, txn: str) -> None:
        for i, rseq in enumerate(rseqs):
            phone.wire.at(0.1 * (i + 1), lambda r=rseq: phone.respond(
                180, headers=[("require", "100rel"), ("rseq", r)]))

        def answer() -> None:
            # The 200 goes only once the 180 was PRACKed (RFC 3262 §3).
            if phone.got("PRACK"):
                phone.respond(200, sdp(phone.host, 31000))
        phone.wire.at(1.0, answer)
    return script


def test_our_invite_says_we_prack() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    [invite] = sc.bob.got("INVITE")
    assert {"100rel", "timer"} <= set(invite.headers.values("supported"))


def test_a_reliable_180_is_pracked_and_the_call_is_answered() -> None:
    sc = call_scene(reliable_ringing())
    sc.alice.call("102")
    sc.wire.run(3)
    [prack] = sc.bob.got("PRACK")
    [invite] = sc.bob.got("INVITE")
    assert prack.headers.get("rack") == f"1 {invite.cseq[0]} INVITE"
    assert prack.to_tag == "bob-tag" and prack.cseq[0] == invite.cseq[0] + 1
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    assert sc.alice.finals() == [200]
    # The confirmed dialog goes on from the PRACK's CSeq (RFC 3261 §12.2.1.1).
    sc.alice.bye()
    sc.wire.run(2)
    [bye] = sc.bob.got("BYE")
    assert bye.cseq[0] == prack.cseq[0] + 1


def test_a_repeated_or_out_of_order_rseq_gets_no_second_prack() -> None:
    sc = call_scene(reliable_ringing((1, 1, 3, 2)))
    sc.alice.call("102")
    sc.wire.run(3)
    assert [p.headers.get("rack", "").split()[0] for p in sc.bob.got("PRACK")] == ["1", "2"]


def test_an_unreliable_180_gets_no_prack() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(3)
    assert not sc.bob.got("PRACK")


# Towards the caller ----------------------------------------------------------------

ALICE = "192.0.2.1"
REL: list[tuple[str, str | int]] = [("supported", "100rel")]


def _reliable_180s(sc: Scene) -> list[bytes]:
    return [d for d in sc.wire.sent(PBX_HOST, ALICE, "SIP/2.0 180") if b"RSeq: 1" in d]


def test_a_caller_that_supports_100rel_gets_a_reliable_180_until_it_pracks() -> None:
    sc = call_scene(answer_after(ring=0.1, answer=20.0))
    sc.alice.call("102", headers=REL)
    sc.wire.run(2.2)  # 180 at 0.1, then again at 0.6, 1.6 (T1 doubling)
    sent = _reliable_180s(sc)
    assert len(sent) == 3 and b"Require: 100rel" in sent[0]
    ringing = next(r for r in sc.alice.responses if r.status == 180)
    assert sc.alice.invite is not None
    early = Dialog.from_uac(sc.alice.invite, ringing)
    prack = early.create_request("PRACK", headers=[("rack", f"1 {ringing.cseq[0]} INVITE")])
    sc.alice.ep.send_request(prack, Peer("udp", PBX_HOST, 5060), sc.wire.now)
    sc.wire.run(5)
    assert len(_reliable_180s(sc)) == 3  # no more once PRACKed
    assert [d for d in sc.wire.sent(PBX_HOST, ALICE, "SIP/2.0 200") if b"PRACK" in d]
    sc.wire.run(20)
    assert sc.alice.finals() == [200]


def test_a_prack_that_matches_nothing_gets_481() -> None:
    sc = call_scene(answer_after(ring=0.1, answer=20.0))
    sc.alice.call("102", headers=REL)
    sc.wire.run(1)
    ringing = next(r for r in sc.alice.responses if r.status == 180)
    assert sc.alice.invite is not None
    early = Dialog.from_uac(sc.alice.invite, ringing)
    wrong = early.create_request("PRACK", headers=[("rack", "7 1 INVITE")])
    sc.alice.ep.send_request(wrong, Peer("udp", PBX_HOST, 5060), sc.wire.now)
    stranger = Request(method="PRACK", uri=wrong.uri, headers=wrong.headers.copy())
    stranger.headers.set("call-id", "nobody-knows")
    stranger.headers.remove("via")
    sc.alice.ep.send_request(stranger, Peer("udp", PBX_HOST, 5060), sc.wire.now)
    sc.wire.run(1)
    assert len([d for d in sc.wire.sent(PBX_HOST, ALICE, "SIP/2.0 481") if b"PRACK" in d]) == 2


def test_a_caller_without_100rel_gets_plain_ringing() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(3)
    assert not [d for d in sc.wire.sent(PBX_HOST, ALICE, "SIP/2.0 180") if b"RSeq" in d]
    assert sc.alice.finals() == [200]
