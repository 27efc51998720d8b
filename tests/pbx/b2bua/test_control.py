"""Call control on the in-memory network: hang up, hold and resume, pause and resume
the recording — what each party gets, the events and the record."""

from __future__ import annotations

from tests.pbx.b2bua.harness import Phone, Wire, answer_after, device, plan
from tests.pbx.b2bua.harness_control import ControlNode, direction, trio

from tongdai.pbx.b2bua import control
from tongdai.pbx.b2bua.actions import PauseRecording, ResumeRecording
from tongdai.pbx.b2bua.events import MediaSilent
from tongdai.pbx.b2bua.state import CallState


def test_hangup_ends_an_answered_call_on_both_sides_hung_up_by_api() -> None:
    t = trio()
    t.wire.run(5)
    t.node.control("hangup")
    t.wire.run(2)
    assert len(t.alice.got("BYE")) == 1 and len(t.bob.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.sip_code) == ("SUCCESS", "api", 200)
    assert t.node.events("call.ended")[0].data["hangup_by"] == "api"


def test_hangup_while_it_rings_cancels_the_callee_and_the_caller_gets_487() -> None:
    wire = Wire()
    node = ControlNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=None))
    node.new_call(plan(), device(bob))
    alice.call("102")
    wire.run(1)
    assert control.refusal(node.core, "app", "c1", "hold") == control.NOT_ANSWERED
    assert control.refusal(node.core, "app", "c1", "hangup") is None
    node.control("hangup")
    wire.run(2)
    assert len(bob.got("CANCEL")) == 1
    assert alice.finals() == [487]
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by, cdr.sip_code) == ("CANCELLED", "api", 487)


def test_another_apps_call_an_unknown_one_and_an_ended_one_are_not_found() -> None:
    t = trio()
    assert control.refusal(t.node.core, "other-app", "c1", "hangup") == control.NOT_FOUND
    assert control.refusal(t.node.core, "app", "nope", "hangup") == control.NOT_FOUND
    t.alice.bye()
    t.wire.run(2)
    assert control.refusal(t.node.core, "app", "c1", "hangup") == control.NOT_FOUND


def test_hold_reinvites_the_other_party_inactive_and_resume_sendrecv() -> None:
    t = trio()
    t.node.control("hold")  # an outgoing call: the callee is the one held
    t.wire.run(1)
    [held] = t.bob.got("INVITE")[1:]
    assert held.to_tag == "bob-tag"  # in the call's dialog
    assert direction(held) == "inactive"
    assert b"192.0.2.10" in held.body and b"40002" in held.body  # still our media port
    assert not t.alice.got("INVITE")  # the agent's leg is left alone
    call = t.node.core.calls["c1"]
    assert call.held == "b" and call.on_hold
    # A held party sends no RTP: that is no reason to hang up.
    t.node.feed(MediaSilent(call_id="c1", seconds=1000))
    assert call.state is CallState.ANSWERED
    t.node.control("resume")
    t.wire.run(1)
    resumed = t.bob.got("INVITE")[-1]
    assert direction(resumed) == "sendrecv"
    version = [int(r.body.split(b"o=")[1].split()[2]) for r in (held, resumed)]
    assert version[1] == version[0] + 1  # a changed offer has a newer o= version
    assert call.held is None and not call.on_hold
    assert [p.kind for p in t.node.published if p.kind in ("call.held", "call.resumed")] == [
        "call.held", "call.resumed"]
    assert t.node.events("call.held")[0].data["party"] == "callee"
    # Both re-INVITEs were answered and ACKed, and the call goes on.
    assert len(t.bob.got("ACK")) == 3
    t.alice.bye()
    t.wire.run(2)
    assert t.node.cdrs[0].status_detail == "SUCCESS"


def test_hold_of_the_caller_on_request() -> None:
    t = trio()
    t.node.control("hold", party="caller")
    t.wire.run(1)
    [held] = t.alice.got("INVITE")
    assert direction(held) == "inactive" and not t.bob.got("INVITE")[1:]
    t.node.control("hold", party="caller")  # already held: nothing more
    t.wire.run(1)
    assert len(t.alice.got("INVITE")) == 1


def test_recording_pause_and_resume_reach_the_media_once_each() -> None:
    t = trio()
    t.node.control("pause_recording")
    t.node.control("pause_recording")
    t.wire.run(1)
    t.node.control("resume_recording")
    t.wire.run(1)
    done = [a for a in t.node.actions if isinstance(a, PauseRecording | ResumeRecording)]
    assert [type(a) for a in done] == [PauseRecording, ResumeRecording]
    assert [p.kind for p in t.node.published if "recording" in p.kind] == [
        "call.recording_paused", "call.recording_resumed"]
    snap = control.snapshot(t.node.core.calls["c1"])
    assert snap["recording"] and not snap["recording_paused"] and snap["state"] == "talking"


def test_a_call_that_is_not_recorded_refuses_a_recording_pause() -> None:
    wire = Wire()
    node = ControlNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=1.0))
    node.new_call(plan(), device(bob), record=False)
    alice.call("102")
    wire.run(2)
    assert control.refusal(node.core, "app", "c1", "pause_recording") == control.NOT_RECORDING
