"""Calls to a DID with a flow, in the pure core on the fake-clock network: tongdai
answers the caller itself, rings agents when the flow says so (first answer wins, the
caller's codec only), and writes the flow's CDR rules. The flow runner is played by
the test, which issues the commands it would."""

from __future__ import annotations

from dataclasses import dataclass

from tests.pbx.b2bua.harness import (
    PBX_HOST,
    Phone,
    RoutingNode,
    Wire,
    answer_after,
    sdp,
)

from tongdai.flows.document import load
from tongdai.pbx.b2bua.events import (
    Anchor,
    Binding,
    MediaSilent,
    NewCall,
    Plan,
    Refuse,
    Shutdown,
)
from tongdai.pbx.b2bua.flow_events import (
    Dialee,
    FlowDial,
    FlowDialled,
    FlowHangup,
    FlowHold,
    FlowInfo,
    FlowNote,
    FlowOver,
    FlowStop,
    RunFlow,
    StartFlow,
)
from tongdai.pbx.b2bua.state import CallState
from tongdai.sip.message import Request
from tongdai.sip.peer import Peer
from tongdai.sip.sdp import SessionDescription


class FlowNode(RoutingNode):
    def route_invite(self, req: Request, peer: Peer, txn: str) -> None:
        plan = Plan(call_id="c1", app_id="app", direction="to_ab", klass="trunking",
                    caller={"number": "0901234567", "type": "realnumber"},
                    callee={"number": "02873001234", "type": "realnumber"}, devices=(),
                    did_number="02873001234")
        self.feed(NewCall(plan=plan, request=req, peer=peer, txn=txn,
                          target=Refuse(status=480, reason="offline"),
                          media=Anchor(a=(PBX_HOST, 40000), b=(PBX_HOST, 40002), record=True),
                          flow=RunFlow(flow=load("play: welcome"))))

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [a for a in self.actions if isinstance(a, kind)]


@dataclass
class Scene:
    wire: Wire
    node: FlowNode
    carrier: Phone
    bob: Phone
    carol: Phone


def scene(bob_answers: float | None = 2.0, carol_status: int | None = None) -> Scene:
    wire = Wire()
    node = FlowNode(wire)
    carrier = Phone(wire, "192.0.2.1", user="carrier")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(0.1, bob_answers))
    carol = Phone(wire, "192.0.2.3", user="carol",
                  script=answer_after(0.1, 0.5 if carol_status else None,
                                      status=carol_status or 200))
    carrier.call("02873001234")
    wire.run(1.0)
    return Scene(wire, node, carrier, bob, carol)


def dialee(p: Phone) -> Dialee:
    return Dialee(name=p.user, party={"number": p.user, "type": "user", "username": p.user},
                  bindings=(Binding(contact=f"sip:{p.user}@{p.host}:5060", peer=p.peer),))


def dial(s: Scene, *phones: Phone, timeout: float = 10.0) -> None:
    s.node.feed(FlowDial(call_id="c1", dialees=tuple(dialee(p) for p in phones),
                         timeout=timeout))


def test_tongdai_answers_the_caller_with_its_codec_and_telephone_event() -> None:
    s = scene()
    assert s.carrier.finals() == [200]
    answer = SessionDescription.parse(s.carrier.responses[-1].body)
    assert answer.media[0].formats == ["0", "101"] and answer.media[0].port == 40000
    [start] = s.node.of(StartFlow)
    assert (start.media.codec, start.media.dtmf_pt) == ("PCMU", 101)
    assert s.node.core.calls["c1"].state is CallState.IN_FLOW
    assert s.node.cdrs == [] and s.node.events("call.answered") == []


def test_first_agent_to_answer_is_bridged_and_is_the_callee() -> None:
    s = scene(bob_answers=2.0)
    dial(s, s.bob, s.carol)
    s.wire.run(1.0)
    # Each agent is offered the caller's codec alone, and hears of its own ringing.
    offer = SessionDescription.parse(s.bob.got("INVITE")[0].body)
    assert offer.media[0].formats == ["0", "101"] and offer.media[0].port == 40002
    assert [e.sip_users for e in s.node.events("call.ringing")] == [("bob",), ("carol",)]
    s.wire.run(2.0)
    assert s.node.of(FlowDialled) == [FlowDialled(call_id="c1", answered="bob")]
    assert s.carol.got("CANCEL")
    s.wire.run(5.0)
    s.carrier.bye()
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert cdr.status_detail == "SUCCESS" and cdr.callee["username"] == "bob"
    # Billing runs from the agent's answer (t=3), not from tongdai's (t=0).
    assert (cdr.answered_at, cdr.billing_seconds, cdr.duration_seconds) == (3.0, 6, 9)
    assert [m for m in s.node.media if type(m).__name__ == "StartRecording"]
    [answered] = s.node.events("call.answered")
    assert answered.sip_users == ("bob",)
    [ended] = s.node.events("call.ended")
    assert set(ended.sip_users) == {"bob", "carol"}
    assert s.node.of(FlowOver) == [FlowOver(call_id="c1", agent="bob")]
    assert s.bob.got("BYE")


def test_nobody_answers_back_to_the_flow_then_caller_hangs_up_is_ivr() -> None:
    s = scene(bob_answers=None)
    dial(s, s.bob, timeout=5)
    s.wire.run(6.0)
    assert s.node.of(FlowDialled) == [FlowDialled(call_id="c1", answered=None)]
    assert s.bob.got("CANCEL")
    assert s.node.core.calls["c1"].state is CallState.IN_FLOW
    s.carrier.bye()
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert (cdr.status_detail, cdr.billing_seconds, cdr.hangup_by) == ("IVR", 0, "caller")
    assert s.node.of(FlowOver) == [FlowOver(call_id="c1", agent=None)]


def test_every_agent_declining_ends_the_dial_at_once() -> None:
    s = scene(bob_answers=None, carol_status=486)
    s.bob.script = answer_after(0.1, 0.3, status=603)
    dial(s, s.bob, s.carol)
    s.wire.run(1.0)
    assert s.node.of(FlowDialled) == [FlowDialled(call_id="c1", answered=None)]
    # The flow can ring again (a queue's next agent).
    s.bob.script = answer_after(0.1, 0.5)
    dial(s, s.bob)
    s.wire.run(2.0)
    assert s.node.of(FlowDialled)[-1] == FlowDialled(call_id="c1", answered="bob")


def test_info_digits_go_to_the_runner_while_tongdai_holds_the_leg() -> None:
    s = scene()
    assert s.carrier.dialog is not None
    req = s.carrier.dialog.create_request("INFO", body=b"Signal=5\r\nDuration=160\r\n",
                                          content_type="application/dtmf-relay")
    s.carrier.ep.send_request(req, Peer("udp", PBX_HOST, 5060), s.wire.now)
    s.wire.run(1.0)
    assert s.node.of(FlowInfo) == [FlowInfo(call_id="c1", content_type="application/dtmf-relay",
                                            body=b"Signal=5\r\nDuration=160\r\n")]


def test_a_reinvite_while_in_the_flow_gets_our_sdp_again() -> None:
    s = scene()
    ours = SessionDescription.parse(s.carrier.responses[-1].body).media[0]
    s.carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30010))
    s.wire.run(1.0)
    oks = [m for m in s.wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 200")
           if b"2 invite" in m.lower()]
    assert oks
    body = oks[-1].split(b"\r\n\r\n", 1)[1]
    again = SessionDescription.parse(body).media[0]
    assert (again.port, again.formats) == (ours.port, ours.formats)
    starts = [m for m in s.node.media if type(m).__name__ == "StartMedia"]
    assert (starts[-1].leg, starts[-1].port) == ("a", 30010)  # its new address
    assert s.node.core.calls["c1"].state is CallState.IN_FLOW


def test_a_voicemail_survives_the_caller_hanging_up() -> None:
    s = scene()
    s.node.feed(FlowNote(call_id="c1", kind="recording", data={}))
    s.carrier.bye()
    s.wire.run(1.0)
    assert s.node.of(FlowStop) == [FlowStop(call_id="c1")]
    assert s.node.cdrs == []  # waits for the file
    s.node.feed(FlowNote(call_id="c1", kind="voicemail", recording="voicemail_x.mp3",
                         data={"box": "bob", "recording": "voicemail_x.mp3"}))
    s.node.feed(FlowHangup(call_id="c1"))
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert (cdr.status_detail, cdr.recording, cdr.hangup_by) == (
        "IVR", "voicemail_x.mp3", "caller")
    assert "bob" in cdr.sip_users
    [vm] = s.node.events("call.voicemail")
    assert vm.data["recording"] == "voicemail_x.mp3" and "bob" in vm.sip_users


def test_a_caller_gone_silent_in_the_flow_is_hung_up() -> None:
    s = scene()
    s.node.feed(MediaSilent(call_id="c1", seconds=30))  # below the 60 s media timeout
    assert s.node.core.calls["c1"].state is CallState.IN_FLOW
    s.node.feed(MediaSilent(call_id="c1", seconds=61))
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("IVR", "system")
    assert s.carrier.got("BYE")


def test_an_offer_without_g711_is_refused() -> None:
    wire = Wire()
    FlowNode(wire)
    carrier = Phone(wire, "192.0.2.1", user="carrier")
    body = sdp("192.0.2.1", 30000).replace(b"RTP/AVP 0 8 101", b"RTP/AVP 9 101")
    carrier.call("02873001234", body=body.replace(b"a=rtpmap:0 PCMU/8000\r\n", b"")
                  .replace(b"a=rtpmap:8 PCMA/8000\r\n", b""))
    wire.run(1.0)
    assert carrier.finals() == [488]


def test_a_server_stopping_while_the_caller_is_in_the_flow_is_ivr() -> None:
    s = scene()
    s.node.feed(Shutdown())
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert (cdr.status_detail, cdr.billing_seconds, cdr.hangup_by) == ("IVR", 0, "system")
    assert s.carrier.got("BYE")
    assert s.node.of(FlowOver) == [FlowOver(call_id="c1", agent=None)]


def test_a_server_stopping_while_agents_ring_is_ivr_and_cancels_them() -> None:
    s = scene(bob_answers=None)
    dial(s, s.bob)
    s.wire.run(1.0)
    s.node.feed(Shutdown())
    s.wire.run(3.0)
    [cdr] = s.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("IVR", "system")
    assert s.bob.got("CANCEL") and s.carrier.got("BYE")
    assert "bob" in cdr.sip_users


def _reinvite_answer(s: Scene) -> SessionDescription:
    return _reinvite_answer_to(s.wire)


def test_a_hold_from_the_caller_is_answered_in_kind_and_quiets_the_flow() -> None:
    s = scene()
    first = SessionDescription.parse(s.carrier.responses[-1].body)
    s.carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30000, "sendonly"))
    s.wire.run(1.0)
    held = _reinvite_answer(s)
    assert held.media[0].direction == "recvonly"  # RFC 3264 §8.4
    assert held.origin.version == first.origin.version + 1
    assert (held.media[0].port, held.media[0].formats) == (40000, ["0", "101"])
    assert s.node.of(FlowHold) == [FlowHold(call_id="c1", held=True)]
    s.carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30000, "inactive"))
    s.wire.run(1.0)
    assert _reinvite_answer(s).media[0].direction == "inactive"
    assert s.node.of(FlowHold)[-1] == FlowHold(call_id="c1", held=True)
    # Off hold: sendrecv again, and the prompts and music are heard again.
    s.carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30000))
    s.wire.run(1.0)
    assert _reinvite_answer(s).media[0].direction == "sendrecv"
    assert s.node.of(FlowHold)[-1] == FlowHold(call_id="c1", held=False)
    assert s.node.core.calls["c1"].state is CallState.IN_FLOW


def test_a_hold_from_the_caller_talking_to_an_agent_reaches_the_agent() -> None:
    s = scene(bob_answers=1.0)
    dial(s, s.bob)
    s.wire.run(3.0)
    assert s.node.core.calls["c1"].state is CallState.ANSWERED
    s.carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30000, "sendonly"))
    s.wire.run(1.0)
    # The agent's phone is asked to hold, on the call's b media port.
    [reinvite] = [r for r in s.bob.got("INVITE") if r.to_tag]
    offer = SessionDescription.parse(reinvite.body).media[0]
    assert offer.direction == "sendonly" and offer.port == 40002
    assert _reinvite_answer(s).media[0].port == 40000
    assert s.node.core.calls["c1"].on_hold
    assert s.node.of(FlowHold) == []  # the flow's media is no longer the caller's


def _late_caller() -> tuple[Wire, FlowNode, Phone]:
    wire = Wire()
    node = FlowNode(wire)
    carrier = Phone(wire, "192.0.2.1", user="carrier")
    carrier.auto_ack = False
    carrier.call("02873001234", body=b"")
    wire.run(1.0)
    return wire, node, carrier


def test_a_late_offer_gets_our_offer_in_the_200_and_the_flow_starts_at_the_ack() -> None:
    wire, node, carrier = _late_caller()
    assert carrier.finals() == [200]
    offer = SessionDescription.parse(carrier.responses[-1].body).media[0]
    assert offer.formats == ["0", "8", "101"] and offer.port == 40000
    assert node.of(StartFlow) == []  # no codec yet: the answer is in the ACK
    answer = sdp("192.0.2.1", 30000).replace(b"RTP/AVP 0 8 101", b"RTP/AVP 8 101")
    carrier.ack(answer)
    wire.run(1.0)
    [start] = node.of(StartFlow)
    assert (start.media.codec, start.media.pt, start.media.dtmf_pt) == ("PCMA", 8, 101)
    assert [m.port for m in node.media if type(m).__name__ == "StartMedia"] == [30000]
    # A re-INVITE later is answered in the one codec the caller chose.
    carrier.send_in_dialog("INVITE", sdp("192.0.2.1", 30000))
    wire.run(1.0)
    assert _reinvite_answer_to(wire).media[0].formats == ["8", "101"]


def test_a_late_offer_whose_ack_has_no_g711_answer_is_hung_up() -> None:
    wire, node, carrier = _late_caller()
    carrier.ack(b"")
    wire.run(3.0)
    assert node.of(StartFlow) == [] and carrier.got("BYE")
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("IVR", "system")


def _reinvite_answer_to(wire: Wire) -> SessionDescription:
    oks = [m for m in wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 200")
           if b" invite" in m.lower().split(b"cseq:", 1)[1].split(b"\r\n", 1)[0]]
    return SessionDescription.parse(oks[-1].split(b"\r\n\r\n", 1)[1])
