"""Leg b: ringing the callee — every binding of a device at once, or a trunk with its
credentials and its failover — and what its answers do to the call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending, flow_call, reliable, session_timer
from tongdai.pbx.b2bua.actions import Respond, StartRecording
from tongdai.pbx.b2bua.events import DialDevice, DialTrunk
from tongdai.pbx.b2bua.messages import authorized
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallInput, CallState, LegInput, LegState
from tongdai.pbx.cdr import Outcome, outcome_of_final
from tongdai.pbx.routes import failover
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Response
from tongdai.sip.peer import Peer

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

# RFC 3261 §16.7 step 6: when every fork failed, a busy or a decline says more about
# the callee than "not reachable there".
_TELLING = (486, 600, 603)


def dial(b: B2bua, call: Call, target: DialDevice | DialTrunk, body: bytes,
         display: str = "") -> None:
    """Start leg b towards ``target`` with SDP ``body`` (empty: a late offer)."""
    call.fire(CallInput.DIAL_B)
    caller = str(call.caller.get("number", "anonymous"))
    if isinstance(target, DialDevice):
        # Every binding rings at once (forking done by the B2BUA, RFC 3261 §16.7):
        # the first to answer wins, the others are cancelled.
        to_uri = f"sip:{target.sip_user}@{b.msg.domain}"
        forks = []
        for binding in target.bindings:
            leg = Leg(name="b", peer=binding.peer, uas=False, state=LegState.CALLING,
                      local_tag=b.ids.tag(), ack_pending=not body)
            req = b.msg.invite(ruri=binding.contact, to_uri=to_uri, from_user=caller,
                               from_display=display, body=body, leg=leg,
                               sip_call_id=b.ids.sip_call_id(), route=binding.route)
            forks.append((leg, req))
        call.forks = [leg for leg, _ in forks]
        call.b = call.forks[0]
        for leg, req in forks:
            b.send_invite(call, leg, req)
    else:
        trunk = target.trunk
        leg = Leg(name="b", peer=Peer(trunk.transport, trunk.host, trunk.port), uas=False,
                  state=LegState.CALLING, local_tag=b.ids.tag(), ack_pending=not body,
                  trunk=trunk, fallback=target.then)
        ruri = f"sip:{target.number}@{trunk.host}:{trunk.port}"
        call.b = leg
        call.forks = []
        req = b.msg.invite(ruri=ruri, to_uri=ruri, from_user=call.caller_id or caller,
                           from_display=display, body=body, leg=leg,
                           sip_call_id=b.ids.sip_call_id())
        b.send_invite(call, leg, req)
    # A failover's trunk gets a whole ring time of its own (the timer is replaced).
    b.set_timer(call, "ring", b.limits.ring_timeout)


def on_invite_response(b: B2bua, call: Call, leg: Leg, resp: Response, again: bool) -> bool:
    """Handle a response to a leg's INVITE; True when the leg just answered and won, so
    the caller bridges it (``connected``, or click-to-call's next step)."""
    code = resp.status
    if 100 < code < 200 and not leg.over and not again:
        prack(b, leg, resp)
    if code < 200:
        if code in (180, 183) and not leg.over:
            first = not leg.rang
            leg.rang = True
            leg.fire(LegInput.RING)
            if call.kind == "basic" and leg.name == "b":
                _relay_provisional(b, call, resp)
            if first and "ringing" not in call.events_sent:
                b.publish(call, "call.ringing")
        return False
    if code < 300:
        if again:
            _answer_again(b, leg, resp)
            return False
        return _answered(b, call, leg, resp)
    if code in (401, 407) and leg.name == "b" and not leg.over \
            and retry_with_credentials(b, call, leg, resp):
        return False
    if code == 422 and not leg.over and (again_req := session_timer.retry_422(b, leg, resp)):
        leg.fire(LegInput.RETRY)
        b.send_invite(call, leg, again_req)
        return False
    if leg.over:
        leg.fire(LegInput.FAIL)  # the 487 to our CANCEL, or a fork we gave up on
        return False
    leg_failed(b, call, leg, code)
    return False


def _answer_again(b: B2bua, leg: Leg, resp: Response) -> None:
    """A retransmitted 2xx whose ACK we hold back (late offer) or sent: ACK it when sent."""
    if leg.dialog is not None and leg.invite is not None and not leg.ack_pending:
        b.ack(leg, leg.dialog.create_ack(leg.invite.cseq[0]))


def _answered(b: B2bua, call: Call, leg: Leg, resp: Response) -> bool:
    assert leg.invite is not None
    dialog = Dialog.from_uac(leg.invite, resp)
    if (early := leg.early.get(resp.to_tag)) is not None:
        # The PRACKs used CSeq numbers of this dialog (RFC 3262 §7.1, RFC 3261 §12.2.1.1).
        dialog.local_seq = early[0].local_seq
    b.track(call, leg, dialog)
    lost = leg.name == "b" and any(f.answered for f in call.forks if f is not leg)
    if call.finished or leg.over or lost:
        # The 2xx crossed our CANCEL, or another fork answered first: confirm, then
        # end (RFC 3261 §15).
        if not leg.over:
            leg.fire(LegInput.CANCEL)
        leg.fire(LegInput.ANSWER)
        b.ack(leg, dialog.create_ack(leg.invite.cseq[0]))
        b.send_in_dialog_untracked(leg, dialog.create_request("BYE"))
        return False
    leg.fire(LegInput.ANSWER)
    if leg.name == "b" and call.forks:
        call.b = leg
        for other in call.forks:
            if other is not leg:
                b.cancel_leg(other)
    leg.remote_sdp = resp.body
    session_timer.answered_as_uac(b, call, leg, resp)
    b.media_to(call, leg, resp.body)
    if not leg.ack_pending:
        b.ack(leg, dialog.create_ack(leg.invite.cseq[0]))
    return True


def connected(b: B2bua, call: Call, resp: Response) -> None:
    """The far end answered: answer leg a (basic calls), start billing and recording.

    The caller gets its 200 (and integrators ``call.answered``) once the call's
    checkpoint is committed (``ending.release_answer``): no crash loses it after that.
    """
    a = call.a
    assert a is not None and call.media is not None
    call.fire(CallInput.B_ANSWERED)
    if call.kind == "basic" and a.uas and a.txn is not None and a.invite is not None:
        body = anchor.rewrite(resp.body, *call.media.a) if resp.body else b""
        ok = b.msg.response(a, 200, body=body)
        a.local_sdp = body
        session_timer.answer_as_uas(b, call, a, a.invite, ok)
        b.track(call, a, Dialog.from_uas(a.invite, ok, local_contact=b.msg.contact(a.peer)))
        a.fire(LegInput.ANSWER)
        txn = a.txn
        call.pending_answer = lambda: b.emit(Respond(txn=txn, response=ok))
    call.answered_at = b.now
    b.emit(StartRecording(call_id=call.call_id))
    b.set_timer(call, "max_duration", b.limits.max_call_duration)
    b.log("call.answered", call_id=call.call_id, app=call.app_id,
          setup=round(call.answered_at - call.started_at, 3))
    ending.make_answer_durable(b, call)


def leg_failed(b: B2bua, call: Call, leg: Leg, code: int) -> None:
    leg.fire(LegInput.FAIL)
    leg.final = code
    if leg.fallback is not None and not call.finished and failover(code, rang=leg.rang):
        # The trunk could not place the call: the same call goes out through the next
        # trunk with a fresh INVITE and dialog. Still one call, so still one CDR.
        assert leg.invite is not None
        b.log("call.failover", call_id=call.call_id, app=call.app_id,
              trunk=leg.trunk.name if leg.trunk is not None else "", code=code,
              next=leg.fallback.trunk.name)
        dial(b, call, leg.fallback, leg.invite.body)
        return
    if call.flow is not None:
        flow_call.fork_failed(b, call)  # the flow goes on: the next agent, or voicemail
        return
    rang = leg.rang
    if leg.name == "b" and len(call.forks) > 1:
        if any(not f.over for f in call.forks):
            return  # other forks still ring
        finals = [f.final for f in call.forks if f.final]
        code = next((c for c in finals if c in _TELLING), finals[0] if finals else code)
        rang = any(f.rang for f in call.forks)
    if call.finished:
        return
    outcome = outcome_of_final(code, rang=rang)
    a = call.a
    if call.kind == "basic" and a is not None and a.uas and a.state is LegState.INVITED:
        # A challenge we could not answer is our problem, not the caller's (RFC 3261 §22.3).
        respond_a(b, a, 503 if code in (401, 407) else code)
    if call.kind == "click_to_call" and leg.name == "b" and a is not None:
        b.bye(a)
    # In click-to-call leg a is the agent: the calling side.
    ending.finish(b, call, outcome, code, "caller" if leg.name == "a" else "callee")


def respond_a(b: B2bua, a: Leg, status: int, reason: str = "") -> None:
    """A final non-2xx to the caller's INVITE."""
    assert a.txn is not None
    a.fire(LegInput.FAIL)
    b.emit(Respond(txn=a.txn, response=b.msg.response(a, status, reason)))


def _relay_provisional(b: B2bua, call: Call, resp: Response) -> None:
    a = call.a
    if a is None or a.txn is None or a.state is not LegState.INVITED or call.media is None:
        return
    body = b""
    if resp.body and resp.status == 183:
        # Early media (RFC 3960): the callee's announcements reach the caller.
        body = anchor.rewrite(resp.body, *call.media.a)
        if call.b is not None:
            b.media_to(call, call.b, resp.body)
    out = b.msg.response(a, resp.status, body=body)
    if not reliable.send(b, call, a, out):
        b.emit(Respond(txn=a.txn, response=out))


def prack(b: B2bua, leg: Leg, resp: Response) -> None:
    """RFC 3262 §4: a reliable provisional (Require: 100rel, RSeq) gets its PRACK, in the
    early dialog it created; a repeat or an out-of-order RSeq gets none."""
    if "100rel" not in (t.lower() for t in resp.headers.values("require")):
        return
    try:
        rseq = int(resp.headers.get("rseq") or "")
    except ValueError:
        return
    if leg.invite is None or not resp.to_tag:
        return
    known = leg.early.get(resp.to_tag)
    if known is None:
        dialog = Dialog.from_uac(leg.invite, resp)
    elif rseq == known[1] + 1:
        dialog = known[0]
    else:
        return
    leg.early[resp.to_tag] = (dialog, rseq)
    b.send_in_dialog_untracked(leg, dialog.create_request(
        "PRACK", headers=[("rack", f"{rseq} {resp.cseq[0]} {resp.cseq[1]}")]))


def retry_with_credentials(b: B2bua, call: Call, leg: Leg, resp: Response) -> bool:
    """The carrier challenged us: the INVITE once more, with the trunk's credentials."""
    trunk = leg.trunk
    if trunk is None or not trunk.username or leg.auth_tries >= 1 or leg.invite is None:
        return False
    req = authorized(leg.invite, resp, trunk, b.ids.cnonce())
    if req is None:
        return False
    leg.auth_tries += 1
    leg.fire(LegInput.RETRY)
    b.send_invite(call, leg, req)
    return True


def ring_timeout(b: B2bua, call: Call) -> None:
    """Nobody answered within the ring time: cancel what rings, end as not answered."""
    if call.state is CallState.RINGING_A:
        side = [call.a]
    elif call.state is CallState.RINGING_B:
        side = list(call.forks) or [call.b]
    else:
        return
    ringing = [leg for leg in side if leg is not None and not leg.over]
    b.log("call.ring_timeout", call_id=call.call_id, app=call.app_id)
    for leg in ringing:
        b.cancel_leg(leg)
    a = call.a
    if a is not None and a.uas and a.state is LegState.INVITED:
        respond_a(b, a, 480, "No Answer")
    if call.kind == "click_to_call" and a is not None and a.answered:
        b.bye(a)
    ending.finish(b, call, Outcome.NO_ANSWER, 480, "system")
