"""Internal and outbound calls through the pure B2BUA on the in-memory network: who
gets what, in which order, and the one CDR each call leaves."""

from __future__ import annotations

from tests.pbx.b2bua.harness import PBX_HOST, answer_after, call_scene, sdp

from tongdai.pbx.b2bua.actions import StartMedia
from tongdai.pbx.b2bua.state import CallState


def test_an_answered_call_bridges_both_legs_and_leaves_one_success_cdr() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    assert sc.alice.finals() == [200]
    assert 180 in [r.status for r in sc.alice.responses]  # ringing relayed
    # Media is anchored: each side's SDP names tongdai, never the other phone.
    assert PBX_HOST.encode() in sc.alice.responses[-1].body
    assert b"IP4 192.0.2.1\r" not in sc.bob.got("INVITE")[0].body
    assert {(m.leg, m.host) for m in sc.node.media if isinstance(m, StartMedia)} == {
        ("a", "192.0.2.1"), ("b", "192.0.2.2")}
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    sc.wire.run(10)
    sc.alice.bye()
    sc.wire.run(2)
    assert len(sc.bob.got("BYE")) == 1
    [cdr] = sc.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.billing_seconds) == ("SUCCESS", "caller", 11)
    assert cdr.recording == "c1.mp3"
    assert [p.kind for p in sc.node.published] == ["call.ringing", "call.answered", "call.ended"]
    assert [e.name for e in sc.node.logs if e.name.startswith("call.")] == [
        "call.started", "call.answered", "call.ended"]


def test_the_callers_200_waits_for_the_answer_checkpoint() -> None:
    sc = call_scene(store_delay=1.5)
    sc.alice.call("102")
    sc.wire.run(1.2)  # bob answered at 1.0; the checkpoint commits at 2.5
    assert sc.alice.finals() == [] and not sc.node.events("call.answered")
    sc.wire.run(1.5)
    assert sc.alice.finals() == [200] and sc.node.events("call.answered")


def test_a_stuck_database_delays_the_200_by_at_most_the_durable_wait() -> None:
    sc = call_scene(store_delay=None)
    sc.alice.call("102")
    sc.wire.run(2.9)
    assert sc.alice.finals() == []
    sc.wire.run(0.2)  # 1.0 + 2.0 s
    assert sc.alice.finals() == [200]


def test_the_200_to_a_bye_goes_once_the_cdr_is_stored() -> None:
    sc = call_scene(store_delay=1.0)
    sc.alice.call("102")
    sc.wire.run(5)
    sc.bob.bye()
    sc.wire.run(0.5)
    assert not sc.node.cdrs and not [r for r in sc.bob.responses if r.cseq[1] == "BYE"]
    assert not sc.alice.got("BYE")  # our BYE waits too
    sc.wire.run(1.0)
    # Recorded: the checkpoint marked ended went first; the CDR follows the recording.
    assert sc.node.checkpoints[-1].ended_at is not None
    assert sc.alice.got("BYE")
    sc.wire.run(2)
    [cdr] = sc.node.cdrs
    assert cdr.hangup_by == "callee" and cdr.status_detail == "SUCCESS"


def test_a_busy_callee_is_busy_for_the_caller_and_in_the_cdr() -> None:
    sc = call_scene(script=answer_after(ring=None, answer=0.5, status=486))
    sc.alice.call("102")
    sc.wire.run(2)
    assert sc.alice.finals() == [486]
    [cdr] = sc.node.cdrs
    assert (cdr.status_detail, cdr.sip_code, cdr.hangup_by) == ("BUSY", 486, "callee")
    assert [p.kind for p in sc.node.published] == ["call.ended"]


def test_late_offer_the_callers_answer_reaches_the_callee_in_the_held_back_ack() -> None:
    sc = call_scene()
    sc.alice.auto_ack = False
    sc.alice.call("102", body=b"")  # no SDP: the offer will come in bob's 200
    sc.wire.run(2)
    assert sc.bob.got("INVITE")[0].body == b""
    assert sc.alice.finals() == [200] and PBX_HOST.encode() in sc.alice.responses[-1].body
    assert not sc.bob.got("ACK")  # held back until alice's ACK brings the answer
    sc.alice.ack(body=sdp("192.0.2.1", 30000))
    sc.wire.run(0.1)
    [ack] = sc.bob.got("ACK")
    assert PBX_HOST.encode() in ack.body and b"IP4 192.0.2.1\r" not in ack.body


def test_a_re_invite_is_relayed_with_anchored_sdp_and_hold_is_noticed() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    sc.alice.send_in_dialog("INVITE", sdp("192.0.2.1", 30000, "sendonly"))
    sc.wire.run(1)
    [reinvite] = [r for r in sc.bob.got("INVITE") if r.to_tag]
    assert b"a=sendonly" in reinvite.body and PBX_HOST.encode() in reinvite.body
    assert sc.node.core.calls["c1"].on_hold
    assert len([r for r in sc.bob.got("ACK")]) == 2  # the call's ACK and the re-INVITE's


def test_a_request_in_no_dialog_gets_481() -> None:
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(2)
    assert sc.alice.dialog is not None
    sc.alice.dialog.call_id = "not-a-call-of-ours"
    sc.alice.bye()
    sc.wire.run(1)
    assert sc.wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 481")
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED


def test_a_bye_that_crosses_the_end_gets_200_and_the_call_is_forgotten_at_once() -> None:
    """Once its CDR is stored the call is gone from memory; its dialogs' keys alone stay
    known for a while, so the far end's own BYE (sent as ours went) gets 200, and a
    BYE in that dialog long after gets 481."""
    sc = call_scene()
    sc.alice.call("102")
    sc.wire.run(5)
    sc.alice.bye()
    sc.wire.run(2)
    [cdr] = sc.node.cdrs
    assert cdr.hangup_by == "caller"
    assert "c1" not in sc.node.core.calls and not sc.node.core.dialogs
    assert len(sc.node.core.ended) == 2  # both legs' dialogs

    def answers_to_bobs_byes() -> list[bytes]:
        return [m.split(b" ", 2)[1] for m in sc.wire.sent(PBX_HOST, "192.0.2.2", "SIP/2.0")
                if b"\r\nCSeq: " in m and b" BYE\r\n" in m]

    sc.bob.bye()  # bob's BYE, crossing ours
    sc.wire.run(1)
    assert answers_to_bobs_byes() == [b"200"]
    assert len(sc.node.cdrs) == 1  # nothing new happens to the call
    sc.wire.run(40)  # past the linger
    sc.bob.bye()
    sc.wire.run(1)
    assert answers_to_bobs_byes() == [b"200", b"481"]
