"""Transfer to a queue on the in-memory network: the leaving party gets BYE at once,
the caller stays answered by tongdai and waits in the queue (a one-node flow run on
its leg, in the codec it talks), an agent the queue rings takes the call, and the one
record follows a queued caller's rules. When the caller leaves, the callee is
re-INVITEd onto leg a and waits instead. The flow runner is played by the test."""

from __future__ import annotations

from tests.pbx.b2bua.harness import Phone, answer_after
from tests.pbx.b2bua.harness_control import answers, refer, sipfrags, trio
from tests.pbx.b2bua.test_flow_calls import dialee

from tongdai.flows import document as d
from tongdai.pbx.b2bua.actions import StartMedia
from tongdai.pbx.b2bua.flow_events import FlowDial, FlowDialled, FlowNote, FlowOver, StartFlow
from tongdai.pbx.b2bua.routing import QUEUE
from tongdai.pbx.b2bua.state import CallState
from tongdai.sip.sdp import SessionDescription

SALES = {"queue": "sales", "type": "queue"}


def _queued(replace: str = "callee"):  # type: ignore[no-untyped-def]
    t = trio()
    t.node.transfer(QUEUE, replace=replace, party=SALES, queue="sales")
    t.wire.run(0.5)
    return t


def _ring_dave(t) -> Phone:  # type: ignore[no-untyped-def]
    dave = Phone(t.wire, "192.0.2.4", user="dave", script=answer_after(ring=0.1, answer=1.0))
    t.node.feed(FlowNote(call_id="c1", kind="queued", data={"queue": "sales"}))
    t.node.feed(FlowDial(call_id="c1", dialees=(dialee(dave),), timeout=15))
    t.wire.run(2)
    return dave


def test_api_transfer_to_a_queue_queues_the_caller_and_an_agent_takes_the_call() -> None:
    t = _queued()
    assert len(t.bob.got("BYE")) == 1 and not t.alice.got("BYE")  # bob leaves at once
    call = t.node.core.calls["c1"]
    assert call.state is CallState.IN_FLOW and call.transfer is None and call.b is None
    [start] = [a for a in t.node.actions if isinstance(a, StartFlow)]
    assert start.flow.start == d.Queue(name="sales")
    assert start.media.codec == "PCMU" and start.caller == "101"
    [ev] = t.node.events("call.transferred")
    assert (ev.data["party"], ev.data["to"], ev.data["by"]) == ("callee", SALES, "api")
    assert ev.data["from"]["username"] == "bob"
    assert call.devices == ("alice",)  # bob is free for other calls while alice waits

    t.wire.run(3)  # alice waits in the queue
    dave = _ring_dave(t)
    kinds = [p.kind for p in t.node.actions if type(p).__name__ == "Publish"]
    assert kinds.index("call.transferred") < kinds.index("call.queued")
    # The agent is offered the caller's codec alone, on the call's b media port.
    offer = SessionDescription.parse(dave.got("INVITE")[0].body).media[0]
    assert offer.formats[0] == "0" and offer.port == 40002
    assert [a for a in t.node.actions if isinstance(a, FlowDialled)] == [
        FlowDialled(call_id="c1", answered="dave")]
    assert call.state is CallState.ANSWERED
    assert [m.host for m in t.node.media if isinstance(m, StartMedia) and m.leg == "b"
            ][-1] == "192.0.2.4"
    t.wire.run(4)
    t.alice.bye()
    t.wire.run(3)
    assert len(dave.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert cdr.status_detail == "SUCCESS" and cdr.callee["username"] == "dave"
    assert cdr.caller["username"] == "alice" and cdr.hangup_by == "caller"
    # Billed from bob's answer, before the transfer (as a transfer to a device is).
    assert cdr.answered_at == 1.0 and cdr.billing_seconds == 11
    assert {"bob", "dave"} <= set(cdr.sip_users)
    assert [a for a in t.node.actions if isinstance(a, FlowOver)] == [
        FlowOver(call_id="c1", agent="dave")]


def test_the_caller_hanging_up_in_the_queue_is_ivr() -> None:
    t = _queued()
    t.wire.run(3)
    t.alice.bye()
    t.wire.run(3)
    [cdr] = t.node.cdrs
    assert (cdr.status_detail, cdr.billing_seconds, cdr.hangup_by) == ("IVR", 0, "caller")
    assert cdr.callee == SALES and "bob" in cdr.sip_users
    assert [a for a in t.node.actions if isinstance(a, FlowOver)] == [
        FlowOver(call_id="c1", agent=None)]


def test_a_refer_to_a_queue_notifies_200_then_the_transferor_gets_bye() -> None:
    t = trio()
    t.node.transfers["sales"] = (QUEUE, SALES, ())
    refer(t.bob, "sip:sales@pbx.test")
    t.wire.run(1)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "REFER") == [202]
    assert sipfrags(t.bob) == [
        ("SIP/2.0 100 Trying", "active;expires=60"),
        ("SIP/2.0 200 OK", "terminated;reason=noresource")]
    assert len(t.bob.got("BYE")) == 1 and not t.alice.got("BYE")
    assert t.node.core.calls["c1"].state is CallState.IN_FLOW
    [ev] = t.node.events("call.transferred")
    assert (ev.data["to"], ev.data["by"]) == (SALES, "refer")
    assert [a for a in t.node.actions if isinstance(a, StartFlow)]


def test_a_refer_from_the_caller_queues_the_callee_on_leg_a_and_an_agent_replaces_it(
) -> None:
    t = trio()
    t.node.transfers["sales"] = (QUEUE, SALES, ())
    refer(t.alice, "sip:sales@pbx.test")  # alice, the caller, hands bob on to the queue
    t.wire.run(1)
    assert sipfrags(t.alice)[-1] == ("SIP/2.0 200 OK", "terminated;reason=noresource")
    assert len(t.alice.got("BYE")) == 1 and not t.bob.got("BYE")
    # bob is re-INVITEd onto the call's a media port (where the flow speaks), sendrecv.
    reinvite = t.bob.got("INVITE")[-1]
    offer = SessionDescription.parse(reinvite.body).media[0]
    assert offer.port == 40000 and offer.formats[0] == "0" and offer.direction == "sendrecv"
    call = t.node.core.calls["c1"]
    assert call.state is CallState.IN_FLOW and call.a is not None and call.a.name == "a"
    assert call.b is None and call.devices == ("bob",)
    assert [m.host for m in t.node.media if isinstance(m, StartMedia) and m.leg == "a"
            ][-1] == "192.0.2.2"  # leg a's media now goes to bob
    [start] = [a for a in t.node.actions if isinstance(a, StartFlow)]
    assert start.caller == "102" and start.media.codec == "PCMU"
    [ev] = t.node.events("call.transferred")
    assert (ev.data["party"], ev.data["to"]) == ("caller", SALES)

    t.wire.run(3)  # bob waits in the queue
    dave = _ring_dave(t)
    assert "102" in dave.got("INVITE")[0].headers.get("from", "")
    assert call.state is CallState.ANSWERED and call.devices == ("bob", "dave")
    t.wire.run(4)
    t.bob.bye()
    t.wire.run(3)
    assert len(dave.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert cdr.status_detail == "SUCCESS" and cdr.caller["username"] == "dave"
    assert cdr.callee["username"] == "bob"
    assert cdr.answered_at == 1.0  # billed from bob's answer, before the transfer
    assert {"alice", "bob", "dave"} <= set(cdr.sip_users)
