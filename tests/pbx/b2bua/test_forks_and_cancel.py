"""A device registered in several places rings everywhere; the first answer wins. The
caller may give up at any moment, even while the callee's 200 is on its way."""

from __future__ import annotations

from tests.pbx.b2bua.harness import (
    PBX_HOST,
    Phone,
    RoutingNode,
    Wire,
    answer_after,
    device,
    plan,
)

from tongdai.pbx.b2bua.state import LegState


def test_the_first_fork_to_answer_wins_and_the_others_are_cancelled() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    desk = Phone(wire, "192.0.2.2", user="desk", script=answer_after(ring=0.1, answer=None))
    mobile = Phone(wire, "192.0.2.3", user="mobile", script=answer_after(ring=0.1, answer=2))
    node.new_call(plan(), device(desk, mobile))
    alice.call("102")
    wire.run(3)
    assert alice.finals() == [200]
    assert len(desk.got("CANCEL")) == 1 and not mobile.got("CANCEL")
    call = node.core.calls["c1"]
    assert call.b is not None and call.b.peer.host == "192.0.2.3"
    assert [f.state for f in call.forks] == [LegState.FAILED, LegState.ANSWERED]
    assert len(node.events("call.ringing")) == 1  # once for the call, not per fork
    alice.bye()
    wire.run(2)
    assert mobile.got("BYE") and not desk.got("BYE")
    [cdr] = node.cdrs
    assert cdr.status_detail == "SUCCESS"


def test_a_second_fork_answering_too_late_is_acked_and_hung_up() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    # Both answer at the same instant: one wins, the other's 200 crosses our CANCEL.
    desk = Phone(wire, "192.0.2.2", user="desk", script=answer_after(ring=None, answer=1))
    mobile = Phone(wire, "192.0.2.3", user="mobile", script=answer_after(ring=None, answer=1))
    node.new_call(plan(), device(desk, mobile))
    alice.call("102")
    wire.run(3)
    assert alice.finals() == [200]
    loser = desk if desk.got("CANCEL") else mobile
    assert loser.got("ACK") and len(loser.got("BYE")) == 1
    assert node.core.calls["c1"].b is not loser


def test_when_every_fork_fails_busy_outranks_unavailable() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    desk = Phone(wire, "192.0.2.2", user="desk",
                 script=answer_after(ring=None, answer=0.5, status=480))
    mobile = Phone(wire, "192.0.2.3", user="mobile",
                   script=answer_after(ring=None, answer=1.0, status=486))
    node.new_call(plan(), device(desk, mobile))
    alice.call("102")
    wire.run(0.8)
    assert alice.finals() == []  # one fork still rings
    wire.run(1)
    assert alice.finals() == [486]
    [cdr] = node.cdrs
    assert cdr.status_detail == "BUSY"


def test_a_caller_who_cancels_while_it_rings_leaves_a_cancelled_cdr() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=None))
    node.new_call(plan(), device(bob))
    alice.call("102")
    wire.run(1)
    alice.cancel()
    wire.run(1)
    assert alice.finals() == [487]
    assert len(bob.got("CANCEL")) == 1
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.sip_code) == ("CANCELLED", "caller", 487)
    # An inbound call the caller gave up on is IVR by the seed's rule.


def test_the_cancel_200_race_the_callee_is_acked_and_hung_up() -> None:
    """RFC 3261 §15: the callee's 200 crosses our CANCEL; we ACK it, then BYE."""
    wire = Wire(latency=0.05)
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=1.0))
    node.new_call(plan(), device(bob))
    alice.call("102")
    wire.run(1.03)
    # bob got the INVITE at 0.10 and answers at 1.10; tongdai gets the CANCEL at 1.08
    # and CANCELs bob: that CANCEL and bob's 200 cross on the wire.
    alice.cancel()
    wire.run(1)
    assert alice.finals() == [487]
    assert wire.sent(PBX_HOST, "192.0.2.2", "CANCEL")
    assert bob.got("ACK") and len(bob.got("BYE")) == 1
    [cdr] = node.cdrs
    assert cdr.status_detail == "CANCELLED" and cdr.billing_seconds == 0
    assert not node.events("call.answered")
    assert not any(d.startswith(b"SIP/2.0 200") and b"INVITE" in d.split(b"CSeq:")[1][:20]
                   for d in wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 200"))
