"""RFC 4028 session timers on both legs, on the fake clock: the interval each side
agrees on, our refreshes (UPDATE when allowed, else re-INVITE), and a call that ends
with its CDR when a side stops refreshing or its refresh finds no dialog."""

from __future__ import annotations

from tests.pbx.b2bua.harness import PBX_HOST, Phone, Scene, Script, answer_after, call_scene, sdp

from tongdai.pbx.b2bua.core import Limits
from tongdai.pbx.b2bua.state import CallState
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request, make_response

LIMITS = Limits(ring_timeout=30, max_call_duration=3600, media_timeout=3600)
BOB = "192.0.2.2"


def answer_with(headers: list[tuple[str, str | int]]) -> Script:
    """A callee that answers at once with ``headers`` in its 200."""
    def script(phone: Phone, req: Request, txn: str) -> None:
        phone.wire.at(0.5, lambda: _respond(phone, headers, sdp(phone.host, 31000)))
    return script


def _respond(phone: Phone, headers: list[tuple[str, str | int]], body: bytes) -> None:
    assert phone.invite is not None and phone.invite_txn is not None
    resp = make_response(phone.invite, 200, to_tag=f"{phone.user}-tag", body=body,
                         content_type="application/sdp", headers=headers)
    resp.headers.add("contact", f"<sip:{phone.user}@{phone.host}:5060>")
    phone.dialog = Dialog.from_uas(phone.invite, resp,
                                   local_contact=f"<sip:{phone.user}@{phone.host}>")
    phone.ep.send_response(phone.invite_txn, resp, phone.wire.now)


def _ended_by_system(sc: Scene) -> None:
    assert sc.alice.got("BYE") and sc.bob.got("BYE")
    [cdr] = sc.node.cdrs
    assert (cdr.status_detail, cdr.hangup_by) == ("SUCCESS", "system")


def test_our_invite_asks_for_a_session_timer_and_advertises_it() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(2)
    [invite] = sc.bob.got("INVITE")
    assert invite.headers.get("session-expires") == "1800"
    assert invite.headers.get("min-se") == "90"
    assert "timer" in invite.headers.values("supported")


def test_a_callee_that_refreshes_and_then_vanishes_ends_the_call_before_expiry() -> None:
    sc = call_scene(answer_with([("session-expires", "90;refresher=uas"),
                                 ("require", "timer")]), limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(1)
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    # RFC 4028 §10: the non-refresher gives up at expiry minus min(32, SE/3) = 60 s.
    sc.wire.run(58)
    assert not sc.bob.got("BYE") and not sc.bob.got("UPDATE") and not sc.bob.got("INVITE")[1:]
    sc.wire.run(3)
    _ended_by_system(sc)
    assert sc.node.logged("call.session_expired")


def test_a_refresh_from_the_callee_keeps_the_call_up() -> None:
    sc = call_scene(answer_with([("session-expires", "90;refresher=uas"),
                                 ("require", "timer")]), limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(1)
    sc.bob.send_in_dialog("UPDATE")  # bob refreshes at 45 s in real life; here at 1 s
    sc.wire.run(1)
    [ok] = [d for d in sc.wire.sent(PBX_HOST, BOB, "SIP/2.0 200") if b"UPDATE" in d]
    assert b"Session-Expires: 90;refresher=uac" in ok
    assert not sc.alice.got("UPDATE")  # answered here, not relayed
    sc.wire.run(58.7)  # past the answer's deadline (60.5 s), not the refresh's (61 s)
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    sc.wire.run(1)
    _ended_by_system(sc)


def test_we_refresh_with_update_when_the_callee_allows_it() -> None:
    sc = call_scene(answer_with([("session-expires", "100;refresher=uac"),
                                 ("allow", "INVITE, ACK, BYE, CANCEL, UPDATE")]),
                    limits=LIMITS)
    sc.bob.reply_headers = [("session-expires", "100;refresher=uac")]
    sc.alice.call("102")
    sc.wire.run(1)
    sc.wire.run(50)  # half the interval after the answer at 0.5 s
    [update] = sc.bob.got("UPDATE")
    assert update.headers.get("session-expires") == "100;refresher=uac"
    sc.wire.run(300)  # refreshed every 50 s
    assert len(sc.bob.got("UPDATE")) == 7
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    assert not sc.alice.got("UPDATE") and not sc.alice.got("BYE")


def test_we_refresh_with_a_reinvite_of_the_same_sdp_and_ack_it() -> None:
    sc = call_scene(answer_with([("session-expires", "100;refresher=uac")]), limits=LIMITS)
    sc.bob.reply_headers = [("session-expires", "100;refresher=uac")]
    sc.alice.call("102")
    sc.wire.run(52)
    first, again = sc.bob.got("INVITE")
    assert again.body == first.body and again.headers.get("content-type") == "application/sdp"
    acks = sc.bob.got("ACK")
    assert [a.cseq[0] for a in acks] == [first.cseq[0], again.cseq[0]]
    assert not sc.alice.got("INVITE")


def test_a_refresh_answered_481_ends_the_call_with_its_cdr() -> None:
    sc = call_scene(answer_with([("session-expires", "100;refresher=uac"),
                                 ("allow", "INVITE, ACK, BYE, UPDATE")]), limits=LIMITS)
    sc.bob.reply_status = 481
    sc.alice.call("102")
    sc.wire.run(52)
    _ended_by_system(sc)


def test_a_refresh_never_answered_ends_the_call() -> None:
    sc = call_scene(answer_with([("session-expires", "100;refresher=uac"),
                                 ("allow", "INVITE, ACK, BYE, UPDATE")]), limits=LIMITS)
    sc.bob.silent = True
    sc.alice.call("102")
    sc.wire.run(51)
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    sc.wire.run(33)  # the UPDATE's transaction gives up after 64·T1
    assert sc.alice.got("BYE")
    [cdr] = sc.node.cdrs
    assert cdr.hangup_by == "system"


def test_a_callee_without_session_timers_gets_no_refreshes() -> None:
    sc = call_scene(answer_after(ring=0.1, answer=1.0), limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(2000)
    assert not sc.bob.got("UPDATE") and len(sc.bob.got("INVITE")) == 1
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED


def test_the_caller_negotiates_its_own_interval_and_must_refresh_it() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102", headers=[("supported", "timer"),
                                  ("session-expires", "120;refresher=uac")])
    sc.wire.run(2)
    [ok] = [r for r in sc.alice.responses if r.status == 200]
    assert ok.headers.get("session-expires") == "120;refresher=uac"
    assert "timer" in ok.headers.values("require")
    sc.wire.run(60)
    sc.alice.send_in_dialog("UPDATE")  # alice refreshes at 62 s
    sc.wire.run(1)
    assert not sc.bob.got("UPDATE")
    sc.wire.run(80)  # 88 s after her refresh would end it; 81 s is fine
    assert sc.node.core.calls["c1"].state is CallState.ANSWERED
    sc.wire.run(8)
    _ended_by_system(sc)


def test_a_caller_without_timer_support_gets_us_as_its_refresher() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102", headers=[("session-expires", "120")])
    sc.wire.run(2)
    [ok] = [r for r in sc.alice.responses if r.status == 200]
    assert ok.headers.get("session-expires") == "120;refresher=uas"
    assert "require" not in ok.headers
    sc.wire.run(60)
    [reinvite] = sc.alice.got("INVITE")  # alice's INVITE has no Allow: a re-INVITE
    assert reinvite.headers.get("session-expires") == "120;refresher=uac"
    assert reinvite.body and b"c=IN IP4 192.0.2.10" in reinvite.body


def test_an_interval_below_our_min_se_gets_422_and_no_record() -> None:
    sc = call_scene(limits=LIMITS)
    sc.alice.call("102", headers=[("supported", "timer"), ("session-expires", "30")])
    sc.wire.run(2)
    [resp] = [r for r in sc.alice.responses if r.status >= 200]
    assert (resp.status, resp.headers.get("min-se")) == (422, "90")
    assert not sc.bob.got("INVITE")
    assert sc.node.cdrs == [] and sc.node.stopped == ["c1"]


def test_a_callee_that_wants_a_longer_minimum_gets_the_invite_again() -> None:
    def script(phone: Phone, req: Request, txn: str) -> None:
        if req.headers.get("session-expires") == "1800":
            phone.respond(422, headers=[("min-se", "3600")])
        else:
            phone.wire.at(0.5, lambda: _respond(phone, [
                ("session-expires", "3600;refresher=uas")], b""))

    sc = call_scene(script, limits=LIMITS)
    sc.alice.call("102")
    sc.wire.run(2)
    first, second = sc.bob.got("INVITE")
    assert second.headers.get("session-expires") == "3600"
    assert second.headers.get("min-se") == "3600"
    assert second.cseq[0] == first.cseq[0] + 1 and second.call_id == first.call_id
    assert sc.alice.finals() == [200]


