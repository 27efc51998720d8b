"""Lost datagrams on either leg: retransmissions carry the call through, and a side
that vanishes still leaves its CDR."""

from __future__ import annotations

import pytest
from tests.pbx.b2bua.harness import PBX_HOST, Phone, RoutingNode, Wire, answer_after, device, plan


@pytest.mark.parametrize("lossy", ["192.0.2.1", "192.0.2.2"])
def test_a_call_survives_heavy_loss_on_one_leg(lossy: str) -> None:
    for seed in range(5):
        wire = Wire(seed=seed)
        rng = wire.rng
        # 30 % of what goes to or comes from ``lossy`` is lost, both ways.
        wire.drop = lambda src, dst, data, rng=rng: lossy in (src, dst) and rng.random() < 0.3
        node = RoutingNode(wire)
        alice = Phone(wire, "192.0.2.1", user="alice")
        bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=1))
        node.new_call(plan(), device(bob))
        alice.call("102")
        wire.run(20)
        assert alice.finals() == [200], seed
        alice.bye()
        wire.run(40)
        assert bob.got("BYE"), seed
        [cdr] = node.cdrs
        assert cdr.status_detail == "SUCCESS"


def test_a_callee_that_vanishes_after_answering_still_ends_with_one_cdr() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    bob = Phone(wire, "192.0.2.2", user="bob", script=answer_after(ring=0.1, answer=1))
    node.new_call(plan(), device(bob))
    alice.call("102")
    wire.run(2)
    wire.drop = lambda src, dst, data: "192.0.2.2" in (src, dst)  # bob is gone
    alice.bye()
    wire.run(40)  # our BYE to bob times out; alice's BYE was answered long before
    assert [r for r in wire.sent(PBX_HOST, "192.0.2.1", "SIP/2.0 200") if b"BYE" in r]
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("SUCCESS", "caller")


def test_a_callee_that_never_answers_at_all_is_a_408_for_the_caller() -> None:
    wire = Wire()
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    node.new_call(plan(), device(Phone(wire, "192.0.2.3", user="ghost")))
    wire.drop = lambda src, dst, data: dst == "192.0.2.3"
    alice.call("102")
    wire.run(40)
    assert alice.finals() == [408]
    [cdr] = node.cdrs
    assert cdr.status_detail == "ERROR"
