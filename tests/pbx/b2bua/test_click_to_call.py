"""Click-to-call: tongdai rings the agent first, then the number with the agent's
codec, and bridges them; an agent who declines or hangs up ends it."""

from __future__ import annotations

from dataclasses import replace

from tests.pbx.b2bua.harness import (
    PBX_HOST,
    Phone,
    RoutingNode,
    Wire,
    answer_after,
    device,
    plan,
)

from tongdai.pbx.b2bua.events import Binding, ClickToCall, Refuse, Target
from tongdai.pbx.b2bua.state import CallState


def _scene(agent_script, number_script=None, target: Target | None = None):  # type: ignore[no-untyped-def]
    wire = Wire()
    node = RoutingNode(wire)
    agent = Phone(wire, "192.0.2.1", user="agent", script=agent_script)
    callee = Phone(wire, "192.0.2.2", user="bob",
                   script=number_script or answer_after(ring=0.1, answer=1))
    node.routes["102"] = target or device(callee)
    node.click_to_call(plan("c2c"), Binding(contact="sip:agent@192.0.2.1:5060",
                                            peer=agent.peer), "102", device="bob")
    return wire, node, agent, callee


def test_the_agent_answers_then_the_number_rings_with_the_agents_codec() -> None:
    wire, node, agent, callee = _scene(answer_after(ring=0.1, answer=1))
    wire.run(0.5)
    [offer] = agent.got("INVITE")
    assert PBX_HOST.encode() in offer.body and not callee.got("INVITE")
    wire.run(2)
    [invite] = callee.got("INVITE")
    assert b"m=audio 40002 RTP/AVP 0 101" in invite.body  # PCMU: the agent's first
    assert node.core.calls["c2c"].state is CallState.ANSWERED
    agent.bye()
    wire.run(2)
    assert callee.got("BYE")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("SUCCESS", "caller")


def test_an_agent_who_declines_never_rings_the_number() -> None:
    wire, node, _, callee = _scene(answer_after(ring=0.1, answer=2, status=603))
    wire.run(5)
    assert not callee.got("INVITE")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.sip_code, cdr.hangup_by) == ("ERROR", 603, "caller")
    assert [p.kind for p in node.published] == ["call.ringing", "call.ended"]


def test_a_number_that_became_unroutable_hangs_up_the_agent() -> None:
    wire, node, agent, callee = _scene(answer_after(ring=None, answer=1),
                                       target=Refuse(status=503, reason="No Route",
                                                     outside=True))
    wire.run(3)
    assert agent.got("BYE") and not callee.got("INVITE")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.klass, cdr.sip_code) == ("ERROR", "trunking", 503)


def test_the_agent_hanging_up_while_the_number_rings_cancels_it() -> None:
    wire, node, agent, callee = _scene(answer_after(ring=None, answer=1),
                                       answer_after(ring=0.1, answer=None))
    wire.run(3)
    assert callee.got("INVITE")
    agent.bye()
    wire.run(1)
    assert callee.got("CANCEL")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("CANCELLED", "caller")


def test_no_media_ports_ends_a_click_to_call_before_anyone_rings() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    agent = Phone(wire, "192.0.2.1", user="agent")
    node.feed(ClickToCall(plan=plan("c2c"), agent=Binding(contact="sip:a@192.0.2.1",
                                                           peer=agent.peer),
                          number="102", device=None, media=None))
    wire.run(1)
    assert not agent.got("INVITE")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.sip_code) == ("ERROR", 503)


def test_the_integrators_correlation_is_in_every_event_and_the_record() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    agent = Phone(wire, "192.0.2.1", user="agent", script=answer_after(ring=0.1, answer=1))
    callee = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=1))
    node.routes["102"] = device(callee)
    meta = {"ticket": "T-1042", "tags": ["vip"]}
    node.click_to_call(replace(plan("c2c"), external_id="crm-1042", metadata=meta),
                       Binding(contact="sip:agent@192.0.2.1:5060", peer=agent.peer), "102",
                       device="bob")
    wire.run(3)
    agent.bye()
    wire.run(2)
    kinds = [p.kind for p in node.published]
    assert kinds[0] == "call.ringing" and kinds[-1] == "call.ended" and "call.answered" in kinds
    for p in node.published:
        assert (p.data["external_id"], p.data["metadata"]) == ("crm-1042", meta), p.kind
    [cdr] = node.cdrs
    assert (cdr.external_id, cdr.metadata) == ("crm-1042", meta)
    # What a crash would turn into the record keeps them too.
    assert node.checkpoints
    assert all((cp.external_id, cp.metadata) == ("crm-1042", meta) for cp in node.checkpoints)
    assert cdr.to_api()["external_id"] == "crm-1042"


def test_a_call_without_correlation_has_no_such_keys() -> None:
    wire, node, agent, _ = _scene(answer_after(ring=0.1, answer=1))
    wire.run(3)
    agent.bye()
    wire.run(2)
    assert node.published
    for p in node.published:
        assert "external_id" not in p.data and "metadata" not in p.data
    [cdr] = node.cdrs
    assert list(cdr.to_api())[-1] == "call_id"
