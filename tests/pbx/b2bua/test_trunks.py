"""Calls out through carriers: credentials for a 401/407, failover to the next trunk
when one cannot place the call, and never once the callee's phone rang."""

from __future__ import annotations

from tests.pbx.b2bua.harness import (
    Phone,
    RoutingNode,
    Wire,
    answer_after,
    plan,
    trunk,
    via_trunks,
)

from tongdai.sip import digest
from tongdai.sip.message import Request


def _challenge(status: int, then: int = 200):  # type: ignore[no-untyped-def]
    """A carrier that challenges the first INVITE, then answers ``then``."""
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"

    def script(phone: Phone, req: Request, txn: str) -> None:
        auth = req.headers.get("authorization") or req.headers.get("proxy-authorization")
        if auth is None:
            phone.respond(status, headers=[(header, 'Digest realm="carrier", '
                                                    'nonce="n1", algorithm=MD5')])
        else:
            phone.auth = auth  # type: ignore[attr-defined]
            answer_after(ring=None, answer=0.2, status=then)(phone, req, txn)
    return script


def _scene(*carriers: Phone, **creds: str):  # type: ignore[no-untyped-def]
    wire = carriers[0].wire
    node = RoutingNode(wire)
    alice = Phone(wire, "192.0.2.1", user="alice")
    trunks = [trunk(f"t{i}", c, trunk_id=i, **creds) for i, c in enumerate(carriers)]
    node.new_call(plan(klass="trunking"), via_trunks("0901234567", *trunks))
    return node, alice


def test_a_407_is_answered_once_with_the_trunks_credentials() -> None:
    wire = Wire()
    carrier = Phone(wire, "198.51.100.1", user="carrier", script=_challenge(407))
    node, alice = _scene(carrier, username="acme", password="trunk-pw")
    alice.call("0901234567")
    wire.run(2)
    assert alice.finals() == [200]
    first, second = carrier.got("INVITE")
    assert (first.cseq[0], second.cseq[0]) == (1, 2)
    scheme, params = digest.parse_params(second.headers.get("proxy-authorization") or "")
    assert (scheme, params["username"], params["realm"]) == ("digest", "acme", "carrier")
    assert not node.cdrs  # still talking


def test_a_401_the_trunk_cannot_answer_is_a_503_for_the_caller() -> None:
    wire = Wire()
    carrier = Phone(wire, "198.51.100.1", user="carrier", script=_challenge(401))
    node, alice = _scene(carrier)  # no credentials
    alice.call("0901234567")
    wire.run(2)
    assert alice.finals() == [503]
    [cdr] = node.cdrs
    assert (cdr.status_detail, cdr.sip_code) == ("ERROR", 401)


def test_a_503_trunk_fails_over_to_the_next_with_a_fresh_invite_and_one_cdr() -> None:
    wire = Wire()
    down = Phone(wire, "198.51.100.1", user="down",
                 script=answer_after(ring=None, answer=0.1, status=503))
    up = Phone(wire, "198.51.100.2", user="up", script=answer_after(ring=0.1, answer=1))
    node, alice = _scene(down, up)
    alice.call("0901234567")
    wire.run(3)
    assert alice.finals() == [200]
    [first] = down.got("INVITE")
    [second] = up.got("INVITE")
    assert first.call_id != second.call_id and first.from_tag != second.from_tag
    [entry] = node.logged("call.failover")
    assert entry.fields["code"] == 503 and entry.fields["next"] == "t1"
    alice.bye()
    wire.run(2)
    [cdr] = node.cdrs
    assert cdr.status_detail == "SUCCESS"


def test_an_unreachable_trunk_times_out_and_fails_over() -> None:
    wire = Wire()
    silent = Phone(wire, "198.51.100.1", user="silent")  # never answers (Timer B: 408)
    wire.drop = lambda src, dst, data: dst == "198.51.100.1"
    up = Phone(wire, "198.51.100.2", user="up", script=answer_after(ring=0.1, answer=1))
    node, alice = _scene(silent, up)
    alice.call("0901234567")
    wire.run(64 * 0.5 + 3)
    assert alice.finals() == [200]
    assert node.logged("call.failover")[0].fields["code"] == 408


def test_no_failover_once_the_callee_rang_nor_for_a_busy_number() -> None:
    for script in (answer_after(ring=0.1, answer=0.5, status=503),
                   answer_after(ring=None, answer=0.5, status=486)):
        wire = Wire()
        first = Phone(wire, "198.51.100.1", user="first", script=script)
        second = Phone(wire, "198.51.100.2", user="second",
                       script=answer_after(ring=0.1, answer=1))
        node, alice = _scene(first, second)
        alice.call("0901234567")
        wire.run(3)
        assert not second.got("INVITE") and not node.logged("call.failover")
        assert alice.finals() and alice.finals()[0] in (503, 486)
        [cdr] = node.cdrs
        assert cdr.status_detail in ("ERROR", "BUSY")
