"""Transfer on the in-memory network: from the Open API and by a phone's REFER
(RFC 3515), to a device that answers, is busy or never answers; the party that
leaves, the one that stays, the NOTIFYs, the events and the one record."""

from __future__ import annotations

from tests.pbx.b2bua.harness import answer_after, trunk, via_trunks
from tests.pbx.b2bua.harness_control import CAROL, answers, direction, refer, sipfrags, trio

from tongdai.pbx.b2bua import control
from tongdai.pbx.b2bua.actions import StartMedia
from tongdai.pbx.b2bua.events import Refuse
from tongdai.pbx.b2bua.state import CallState
from tongdai.sip.peer import Peer


def _media(t: object, leg: str) -> list[str]:
    return [m.host for m in t.node.media  # type: ignore[attr-defined]
            if isinstance(m, StartMedia) and m.leg == leg]


def test_api_transfer_of_the_callee_rings_the_target_and_replaces_the_callee() -> None:
    t = trio()
    target = t.node.transfers["carol"][0]
    t.node.transfer(target, replace="callee")
    t.wire.run(0.5)
    [invite] = t.carol.got("INVITE")
    # Offered on the callee side's media port, in the codec the call talks in.
    assert b"m=audio 40002 RTP/AVP 0 101" in invite.body
    assert control.refusal(t.node.core, "app", "c1", "hold") == control.TRANSFERRING
    assert not t.bob.got("BYE")  # bob talks until carol answers
    t.wire.run(1.5)
    assert len(t.bob.got("BYE")) == 1 and not t.alice.got("BYE")
    assert _media(t, "b")[-1] == "192.0.2.3"  # the relay sends carol what alice says
    call = t.node.core.calls["c1"]
    assert call.state is CallState.ANSWERED and call.transfer is None
    [ev] = t.node.events("call.transferred")
    assert (ev.data["party"], ev.data["to"], ev.data["by"]) == ("callee", CAROL, "api")
    assert ev.data["from"]["username"] == "bob"
    assert "carol" in ev.sip_users
    t.wire.run(5)
    t.alice.bye()
    t.wire.run(2)
    assert len(t.carol.got("BYE")) == 1
    [cdr] = t.node.cdrs  # one record per call: the callee is who talked last
    assert cdr.callee == CAROL and cdr.caller["username"] == "alice"
    assert cdr.status_detail == "SUCCESS" and cdr.hangup_by == "caller"
    assert cdr.billing_seconds == 8  # from bob's answer at 1 s to the end at 9 s
    assert "carol" in cdr.sip_users


def test_api_transfer_to_a_busy_target_leaves_the_call_with_the_original_party() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=0.5, status=486))
    t.node.transfer(t.node.transfers["carol"][0], replace="callee")
    t.wire.run(2)
    assert not t.bob.got("BYE") and not t.alice.got("BYE")
    assert t.node.core.calls["c1"].transfer is None
    [failed] = t.node.events("call.transfer_failed")
    assert failed.data["sip_code"] == 486
    assert not t.node.events("call.transferred")
    t.bob.bye()
    t.wire.run(2)
    [cdr] = t.node.cdrs
    assert cdr.callee["username"] == "bob" and cdr.hangup_by == "callee"


def test_a_target_that_never_answers_is_cancelled_at_the_ring_timeout() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=None))
    t.node.transfer(t.node.transfers["carol"][0], replace="callee")
    t.wire.run(70)
    assert len(t.carol.got("CANCEL")) == 1
    assert t.node.events("call.transfer_failed")[0].data["sip_code"] == 480
    assert t.node.core.calls["c1"].state is CallState.ANSWERED


def test_hanging_up_while_the_target_rings_cancels_it_too() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=None))
    t.node.transfer(t.node.transfers["carol"][0], replace="callee")
    t.wire.run(1)
    t.alice.bye()
    t.wire.run(2)
    assert len(t.carol.got("CANCEL")) == 1 and len(t.bob.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert cdr.callee["username"] == "bob"


def test_an_unroutable_target_fails_at_once() -> None:
    t = trio()
    t.node.transfer(Refuse(status=404, reason="Not Found"), replace="callee")
    t.wire.run(1)
    assert t.node.events("call.transfer_failed")[0].data["sip_code"] == 404
    assert not t.carol.got("INVITE")


def test_transfer_of_the_caller_out_through_a_trunk_makes_the_record_trunking() -> None:
    t = trio()
    number = {"number": "0901234567", "type": "realnumber"}
    t.node.transfer(via_trunks("0901234567", trunk("carrier", t.carol)), replace="caller",
                    party=number)
    t.wire.run(2)
    [invite] = t.carol.got("INVITE")
    assert invite.uri.startswith("sip:0901234567@192.0.2.3")
    assert b"m=audio 40000 " in invite.body  # the caller side's port
    assert len(t.alice.got("BYE")) == 1 and not t.bob.got("BYE")
    assert _media(t, "a")[-1] == "192.0.2.3"
    t.bob.bye()
    t.wire.run(2)
    [cdr] = t.node.cdrs
    assert cdr.caller == number and cdr.klass == "trunking" and cdr.hangup_by == "callee"
    assert len(t.carol.got("BYE")) == 1


# A phone's REFER (RFC 3515) ---------------------------------------------------------


def test_blind_refer_gets_202_trying_then_200_and_the_transferor_leaves() -> None:
    t = trio()
    refer(t.bob, "sip:carol@pbx.test")
    t.wire.run(0.05)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "REFER") == [202]
    assert sipfrags(t.bob)[0] == ("SIP/2.0 100 Trying", "active;expires=60")
    t.wire.run(2)
    assert sipfrags(t.bob)[-1] == ("SIP/2.0 200 OK", "terminated;reason=noresource")
    assert len(t.bob.got("BYE")) == 1 and not t.alice.got("BYE")
    assert t.node.events("call.transferred")[0].data["by"] == "refer"
    t.carol.bye()
    t.wire.run(2)
    assert len(t.alice.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert cdr.callee == CAROL and cdr.hangup_by == "callee"


def test_refer_to_a_busy_target_notifies_the_failure_and_keeps_the_call() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=0.5, status=486))
    refer(t.bob, "sip:carol@pbx.test")
    t.wire.run(2)
    frags = sipfrags(t.bob)
    assert frags[0][0] == "SIP/2.0 100 Trying"
    assert frags[-1] == ("SIP/2.0 486 Busy Here", "terminated;reason=noresource")
    assert not t.bob.got("BYE") and not t.alice.got("BYE")
    assert t.node.core.calls["c1"].state is CallState.ANSWERED


def test_a_transferor_that_hangs_up_at_once_leaves_the_transferee_ringing_carol() -> None:
    t = trio()
    refer(t.bob, "sip:carol@pbx.test")
    t.wire.run(0.3)
    t.bob.bye()  # blind transfer: many phones hang up right after the 202
    t.wire.run(0.2)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "BYE") == [200]
    assert not t.alice.got("BYE")
    t.wire.run(2)
    assert t.node.events("call.transferred")
    assert not t.node.cdrs and not t.alice.got("BYE")
    t.alice.bye()
    t.wire.run(2)
    assert len(t.carol.got("BYE")) == 1 and t.node.cdrs[0].callee == CAROL


def test_when_the_transferor_left_and_the_target_fails_the_call_ends() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=1.0, status=486))
    refer(t.bob, "sip:carol@pbx.test")
    t.wire.run(0.3)
    t.bob.bye()
    t.wire.run(3)
    assert len(t.alice.got("BYE")) == 1
    [cdr] = t.node.cdrs
    assert cdr.callee["username"] == "bob" and cdr.hangup_by == "system"


def test_a_held_transferee_is_resumed_once_the_target_answers() -> None:
    t = trio()
    # alice (the caller) holds bob, as phones do before a transfer, then refers him.
    assert t.alice.dialog is not None and t.alice.invite is not None
    hold = t.alice.dialog.create_request(
        "INVITE", body=t.alice.invite.body.replace(b"a=sendrecv", b"a=sendonly"),
        content_type="application/sdp")
    t.alice.ep.send_request(hold, Peer("udp", "192.0.2.10", 5060), t.wire.now)
    t.wire.run(1)
    held = t.bob.got("INVITE")[-1]
    assert direction(held) == "sendonly"
    refer(t.alice, "sip:carol@pbx.test")
    t.wire.run(3)
    assert len(t.alice.got("BYE")) == 1
    resumed = t.bob.got("INVITE")[-1]
    assert direction(resumed) == "sendrecv" and resumed is not held
    assert t.node.events("call.transferred")[0].data["party"] == "caller"


def test_bad_refers_are_refused() -> None:
    t = trio()
    refer(t.bob, "", refer_to=False)
    t.wire.run(0.5)
    refer(t.bob, "sip:pbx.test")
    t.wire.run(0.5)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "REFER") == [400, 400]
    assert not t.carol.got("INVITE") and not t.bob.got("NOTIFY")



# Attended transfer: REFER with Replaces (RFC 3891), both calls tongdai's -----------


def test_attended_refer_joins_the_consulted_party_and_ends_the_consultation() -> None:
    import dataclasses
    from urllib.parse import quote

    from tests.pbx.b2bua.harness import Phone, Wire, device, plan
    from tests.pbx.b2bua.harness_control import ControlNode

    wire = Wire()
    node = ControlNode(wire)
    customer = Phone(wire, "192.0.2.2", user="bob")
    agent = Phone(wire, "192.0.2.1", user="alice", script=answer_after(ring=0.1, answer=0.5))
    agent2 = Phone(wire, "192.0.2.4", user="alice2")  # the agent's second line
    carol = Phone(wire, "192.0.2.3", user="carol", script=answer_after(ring=0.1, answer=0.5))
    agent_party = {"number": "101", "type": "user", "username": "alice"}
    node.new_call(dataclasses.replace(plan("c1"), callee=agent_party), device(agent))
    customer.call("101")
    wire.run(2)
    node.new_call(dataclasses.replace(plan("c2"), caller=agent_party, callee=CAROL),
                  device(carol, sip_user="carol"))
    agent2.call("103")
    wire.run(2)
    assert customer.finals() == [200] and agent2.finals() == [200]
    assert agent2.dialog is not None
    cid, ours, theirs = agent2.dialog.id  # the consultation, as the agent's phone has it
    replaces = f"{quote(cid, safe='')}%3Bto-tag%3D{theirs}%3Bfrom-tag%3D{ours}"
    refer(agent, f"sip:carol@pbx.test?Replaces={replaces}")
    wire.run(3)
    assert answers(wire, "192.0.2.10", "192.0.2.1", "REFER") == [202]
    assert [f for f, _ in sipfrags(agent)] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    # carol was re-INVITEd onto the customer's call, nobody rang again.
    reinvite = carol.got("INVITE")[-1]
    assert reinvite.to_tag == "carol-tag" and len(carol.got("INVITE")) == 2
    assert [m.host for m in node.media if isinstance(m, StartMedia)
            and m.call_id == "c1" and m.leg == "b"][-1] == "192.0.2.3"
    # The agent leaves both calls; the customer and carol stay.
    assert len(agent.got("BYE")) == 1 and len(agent2.got("BYE")) == 1
    assert not customer.got("BYE") and not carol.got("BYE")
    [consult] = node.cdrs
    assert consult.call_id == "c2" and consult.hangup_by == "transfer"
    [ev] = node.events("call.transferred")
    assert ev.data["call_id"] == "c1" and ev.data["to"] == CAROL
    customer.bye()
    wire.run(2)
    assert len(carol.got("BYE")) == 1
    call = next(c for c in node.cdrs if c.call_id == "c1")
    assert call.callee == CAROL and call.status_detail == "SUCCESS"


def test_a_replaces_that_names_no_call_of_ours_is_481() -> None:
    t = trio()
    refer(t.bob, "sip:carol@pbx.test?Replaces=nope%3Bto-tag%3D1%3Bfrom-tag%3D2")
    t.wire.run(1)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "REFER") == [481]
    assert t.node.core.calls["c1"].transfer is None


def test_a_second_transfer_while_one_rings_is_491_and_the_api_is_refused() -> None:
    t = trio(carol=answer_after(ring=0.1, answer=None))
    refer(t.bob, "sip:carol@pbx.test")
    t.wire.run(0.5)
    assert control.refusal(t.node.core, "app", "c1", "transfer") == control.TRANSFERRING
    refer(t.alice, "sip:carol@pbx.test")
    t.wire.run(0.5)
    assert answers(t.wire, "192.0.2.10", "192.0.2.2", "REFER") == [202]
    assert answers(t.wire, "192.0.2.10", "192.0.2.1", "REFER") == [491]
    assert len(t.carol.got("INVITE")) == 1

