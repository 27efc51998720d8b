"""Time limits of a call on the fake clock: ring timeout, maximum duration, media
silence, and a 200 that is never acknowledged (a stray ACK does not count)."""

from __future__ import annotations

from tests.pbx.b2bua.harness import answer_after, call_scene

from tongdai.pbx.b2bua.core import Limits
from tongdai.pbx.b2bua.events import MediaSilent
from tongdai.pbx.b2bua.state import CallState

LIMITS = Limits(ring_timeout=30, max_call_duration=600, media_timeout=60)


def test_nobody_answers_within_the_ring_timeout() -> None:
    sc = call_scene(answer_after(ring=0.1, answer=None), limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(29.9)
    assert sc.alice.finals() == []
    sc.wire.run(1)
    assert sc.alice.finals() == [480]
    assert len(sc.bob.got("CANCEL")) == 1
    [cdr] = sc.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.sip_code) == ("IVR", "system", 480)


def test_a_call_ends_at_its_maximum_duration() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(600.5)
    assert not sc.alice.got("BYE")
    sc.wire.run(1)
    assert len(sc.alice.got("BYE")) == 1 and len(sc.bob.got("BYE")) == 1
    [cdr] = sc.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.billing_seconds) == ("SUCCESS", "system", 600)


def test_silent_media_ends_the_call_but_not_a_held_one() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(2)
    sc.node.feed(MediaSilent(call_id="c1", seconds=30))
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED  # under the limit
    sc.node.core.calls["c1"].on_hold = True
    sc.node.feed(MediaSilent(call_id="c1", seconds=90))
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED  # held: no RTP is fine
    sc.node.core.calls["c1"].on_hold = False
    sc.node.feed(MediaSilent(call_id="c1", seconds=61))
    sc.wire.run(1)
    assert sc.alice.got("BYE") and sc.bob.got("BYE")
    assert sc.node.logged("call.media_timeout")
    [cdr] = sc.node.cdrs
    assert cdr.hangup_by == "system"


def test_an_unacknowledged_200_ends_the_call_after_64_t1_and_a_stray_ack_is_ignored() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.auto_ack = False
    sc.alice.call("102")
    sc.wire.run(2)
    assert sc.alice.dialog is not None and sc.alice.invite is not None
    # An ACK in the dialog with another CSeq is not the ACK of our 2xx (§13.2.2.4).
    stray = sc.alice.dialog.create_ack(sc.alice.invite.cseq[0] + 5)
    sc.alice.ep.send_stateless(stray, sc.alice.peer.__class__("udp", "192.0.2.10", 5060))
    sc.wire.run(10)
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    sc.wire.run(32)
    assert sc.bob.got("BYE")
    [cdr] = sc.node.cdrs
    assert cdr.hangup_by == "system" and cdr.status_detail == "SUCCESS"
