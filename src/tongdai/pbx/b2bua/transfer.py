"""Transfer: one party of an answered call is replaced by a new one, the other stays.

Two ways in: the Open API names the call, the side to replace and the target
(``TransferTo``, routed by the driver); a phone sends REFER (``refer``), whose
progress goes back to it as NOTIFYs (``notify``).

The new party is rung with an offer on the media port of the side it replaces, in the
codec already in use, so the relay carries on without the staying party noticing.
When it answers, it takes the leaving party's place (the old leg gets BYE) and the
staying party, if held, is resumed. If it does not answer, the call stays with the
original party — unless that party has already hung up, in which case the call
ends. One call keeps one record: the replaced side of the CDR (caller or callee)
becomes the party who talked last, and ``call.transferred`` is published.

A queue of the app as the target (``TransferTo.queue``) rings nobody here: the
leaving party gets BYE at once (as in a blind transfer; a REFER's transferor first
hears NOTIFY 200), and the staying party waits in the queue as a flow call's caller
does (``IN_FLOW``, a one-node flow ``{queue: NAME}`` run by the flow runner on leg a,
in the codec it already talks). A staying callee is moved to leg a first: a re-INVITE
points its RTP at leg a's media port. From then on the call is a queued flow call:
``call.transferred`` then ``call.queued``; an agent answering makes it SUCCESS with
that agent in the leaving side's place, billed from the call's first answer (as
through a transfer to a device); hanging up in the queue makes it IVR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tongdai.flows import document
from tongdai.pbx import anchor
from tongdai.pbx.b2bua import control, ending, outbound, session_timer
from tongdai.pbx.b2bua.actions import Respond
from tongdai.pbx.b2bua.events import DialDevice, DialTrunk, Party, Refuse, Target
from tongdai.pbx.b2bua.flow_call import FlowState
from tongdai.pbx.b2bua.flow_events import StartFlow
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallInput, CallState, LegInput, LegState
from tongdai.pbx.flow import sdp
from tongdai.pbx.protocol import Side
from tongdai.pbx.routes import failover
from tongdai.sip.dialog import Dialog
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

SIPFRAG = "message/sipfrag;version=2.0"
RING = "transfer_ring"
# How long the REFER's implicit subscription is said to last (RFC 3515 §2.4.4); it
# ends with the new party's final answer, well before.
SUBSCRIPTION = 60
_REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
            403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
            480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
            488: "Not Acceptable Here", 500: "Server Internal Error",
            501: "Not Implemented", 503: "Service Unavailable", 603: "Decline"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferTo:
    """Ring ``target`` in place of one side of the call. From the Open API ``replace``
    names the side (None: the app's own device — the caller of an outgoing call, the
    callee of an incoming one); for a REFER the side is the transferor's, already
    known. ``party`` and ``devices`` say who the new party is in the call's record."""

    call_id: str
    target: Target
    party: Party
    devices: tuple[str, ...] = ()
    replace: Side | None = None
    by: str = "api"
    queue: str | None = None  # one of the app's queues: the staying party waits there


@dataclass(eq=False)
class Transfer:
    """A call's transfer in progress."""

    replaced: Leg  # the party that leaves
    by: str  # "api" or "refer"
    notify: bool = False  # a REFER: progress goes back to ``replaced`` as NOTIFYs
    leg: Leg | None = None  # the new party's leg, once it is rung
    party: Party = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    departed: bool = False  # the replaced party hung up before the new one answered
    # Attended (RFC 3891): the other call the new party comes from; ``leg`` is then its
    # answered leg in that call, re-INVITEd to our media, not rung.
    consult: Call | None = None
    offer: bytes = b""  # the SDP the re-INVITE offered it


# Into a transfer -------------------------------------------------------------------


def on_transfer_to(b: B2bua, ev: TransferTo) -> None:
    call = b.calls.get(ev.call_id)
    if call is None or call.finished:
        return
    tr = call.transfer
    if tr is None:  # the Open API (the driver checked ``control.refusal`` first)
        if call.state is not CallState.ANSWERED:
            return
        side = ev.replace or ("callee" if call.direction == "to_ab" else "caller")
        replaced = control.party_leg(call, side)
        if replaced is None or not replaced.answered:
            return
        tr = call.transfer = Transfer(replaced=replaced, by=ev.by)
    elif tr.leg is not None:
        return  # already ringing someone
    tr.party, tr.devices = ev.party, ev.devices
    b.log("call.transfer", call_id=call.call_id, app=call.app_id, by=tr.by,
          to=ev.party.get("number"), queue=ev.queue)
    if ev.queue is not None:
        to_queue(b, call, tr, ev.queue)
        return
    _ring(b, call, tr, ev.target)


def intercept(b: B2bua, call: Call, leg: Leg, req: Request, txn: str | None) -> bool:
    """A request from a party that left the call, or from the replaced party hanging
    up while the new one rings: handled here (True), not as the call's."""
    tr = call.transfer
    pending = tr is not None and tr.leg is not None and leg is tr.replaced
    if leg not in call.gone and not (pending and req.method == "BYE"):
        return False
    if req.method == "ACK" or txn is None:
        return True
    if req.method != "BYE":
        b.emit(Respond(txn=txn, response=make_response(req, 481)))
        return True
    # RFC 3261 §15.1.2: its BYE ends only its own dialog.
    b.emit(Respond(txn=txn, response=make_response(req, 200)))
    if leg.answered:
        leg.fire(LegInput.BYE)
    if pending and tr is not None:
        tr.departed = True
        _leave(call, leg)
        b.log("call.transferor_left", call_id=call.call_id, app=call.app_id)
    return True


# Ringing the new party -------------------------------------------------------------


def _ring(b: B2bua, call: Call, tr: Transfer, target: Target) -> None:
    keep = call.other(tr.replaced)
    assert keep is not None and call.media is not None
    local = call.media.a if tr.replaced.name == "a" else call.media.b
    codec = codec_in_use(call)
    body = anchor.offer(*local, codecs=(codec,) if codec else ("0", "8"))
    shown = call.callee if keep is call.b else call.caller
    number = str(shown.get("number", "anonymous"))
    match target:
        case DialDevice(bindings=bindings) if bindings:
            # The device's freshest binding (transfer does not fork).
            first = bindings[0]
            leg = _new_leg(b, tr, first.peer)
            req = b.msg.invite(ruri=first.contact, to_uri=f"sip:{target.sip_user}@"
                               f"{b.msg.domain}", from_user=number, from_display="", body=body,
                               leg=leg, sip_call_id=b.ids.sip_call_id(), route=first.route)
        case DialTrunk(trunk=trunk):
            leg = _new_leg(b, tr, Peer(trunk.transport, trunk.host, trunk.port))
            leg.trunk, leg.fallback = trunk, target.then
            ruri = f"sip:{target.number}@{trunk.host}:{trunk.port}"
            caller_id = call.caller_id or call.did_number or number
            req = b.msg.invite(ruri=ruri, to_uri=ruri, from_user=caller_id, from_display="",
                               body=body, leg=leg, sip_call_id=b.ids.sip_call_id())
        case Refuse(status=status):
            fail(b, call, tr, status)
            return
        case _:
            fail(b, call, tr, 501)  # nothing this module can ring
            return
    tr.leg = leg
    b.send_invite(call, leg, req)
    b.set_timer(call, RING, b.limits.ring_timeout)


def _new_leg(b: B2bua, tr: Transfer, peer: Peer) -> Leg:
    return Leg(name=tr.replaced.name, peer=peer, uas=False, state=LegState.CALLING,
               local_tag=b.ids.tag())


def to_queue(b: B2bua, call: Call, tr: Transfer, queue: str) -> None:
    """The leaving party goes now; the staying one waits in ``queue``."""
    keep = call.other(tr.replaced)
    media = _talks(keep)
    if keep is None or media is None or not keep.answered or call.media is None \
            or keep.dialog is None or tr.departed:
        fail(b, call, tr, 501 if media is None else 480)
        return
    old = tr.replaced
    if tr.notify:
        notify(b, old, 200, final=True)  # the queue took the call: the REFER succeeded
    if old.answered:
        b.bye(old)
    _leave(call, old)
    for timer in (RING, "refresh_a", "expire_a", "refresh_b", "expire_b"):
        b.cancel_timer(call, timer)
    # The party that waits is the flow's caller whichever side it was; an agent who
    # answers takes the leaving side's place in the record.
    side: Side = "callee" if old.name == "b" else "caller"
    if keep is call.b:
        _onto_leg_a(b, call, keep, media)
    elif anchor.on_hold(keep.local_sdp):
        _resume(b, call, keep)  # it hears the queue's music
    call.b, call.forks, call.transfer = None, [], None
    before = call.callee if side == "callee" else call.caller
    waiting = call.caller if side == "callee" else call.callee
    if side == "callee":
        call.callee = tr.party
    else:
        call.caller = tr.party
    # Until an agent answers, only the waiting party is in the call: the other devices
    # it had are not busy, and see the call in their histories at its end (``rung``).
    mine = waiting.get("username") if waiting.get("type") == "user" else None
    call.flow = FlowState(media=media, rung=[d for d in call.devices if d != mine],
                          agent_side=side, first_answer=call.answered_at)
    call.devices = tuple(d for d in call.devices if d == mine)
    # Unanswered until an agent answers (then billed from the first answer again).
    call.answered_at, call.answer_released = None, False
    call.held, call.on_hold = None, False
    call.fire(CallInput.TO_QUEUE)
    b.log("call.transferred", call_id=call.call_id, app=call.app_id, by=tr.by,
          side=side, queue=queue)
    b.publish(call, "call.transferred", {**call.event_data(), "party": side,
                                         "from": before, "to": tr.party, "by": tr.by})
    b.emit(StartFlow(call_id=call.call_id, app_id=call.app_id,
                     caller=str(waiting.get("number", "")),
                     flow=document.load(json.dumps({"queue": queue})), media=media))


def _talks(keep: Leg | None) -> sdp.Media | None:
    """The G.711 codec (and telephone-event) the staying party talks: our answer to it
    (a caller) or its answer to us (a callee)."""
    if keep is None:
        return None
    return sdp.choose(keep.local_sdp if keep.uas else keep.remote_sdp)


def _onto_leg_a(b: B2bua, call: Call, keep: Leg, media: sdp.Media) -> None:
    """The callee stays, the caller left: the flow runtime speaks on leg a, so the
    callee becomes leg a. A re-INVITE (RFC 3261 §14.1) moves its RTP to leg a's media
    port, in the codec it talks, sendrecv (which also takes it off hold); we send to
    it at once at the address it gave."""
    assert call.media is not None and keep.dialog is not None
    body = sdp.describe(*call.media.a, media)
    keep.name = "a"
    call.a = keep
    keep.local_sdp = body
    b.media_to(call, keep, keep.remote_sdp)
    b.send_refresh(call, keep, keep.dialog.create_request(
        "INVITE", body=body, content_type="application/sdp",
        headers=session_timer.request_headers(keep)))


def _resume(b: B2bua, call: Call, keep: Leg) -> None:
    """The staying party was held (as phones do before a REFER): off hold now."""
    assert keep.dialog is not None
    body = control.with_direction(keep.local_sdp, "sendrecv")
    keep.local_sdp = body
    b.send_refresh(call, keep, keep.dialog.create_request(
        "INVITE", body=body, content_type="application/sdp"))


def codec_in_use(call: Call) -> str | None:
    """The G.711 payload type the call talks in: the one an answer of ours picked."""
    for leg in (call.b, call.a):
        if leg is not None and not leg.uas and leg.remote_sdp:
            codec = anchor.chosen_codec(leg.remote_sdp)
            if codec is not None:
                return codec
    return None


def on_response(b: B2bua, call: Call, leg: Leg, resp: Response, again: bool) -> None:
    """A response to the new party's INVITE (the core routes it here while the
    transfer is pending)."""
    tr = call.transfer
    assert tr is not None
    if tr.consult is not None:
        from tongdai.pbx.b2bua import refer  # (refer builds on this module)

        refer.joined(b, call, tr, tr.consult, leg, resp, again)
        return
    code = resp.status
    if 100 < code < 200 and not leg.over and not again:
        outbound.prack(b, leg, resp)
    if code < 200:
        if code in (180, 183) and not leg.over:
            leg.rang = True
            leg.fire(LegInput.RING)
        return
    if code < 300:
        if not again and leg.invite is not None:
            _answered(b, call, tr, leg, resp)
        return
    if code in (401, 407) and not leg.over and outbound.retry_with_credentials(
            b, call, leg, resp):
        return
    if code == 422 and not leg.over and (retry := session_timer.retry_422(b, leg, resp)):
        leg.fire(LegInput.RETRY)
        b.send_invite(call, leg, retry)
        return
    if leg.over:
        leg.fire(LegInput.FAIL)  # the 487 to our CANCEL: already dealt with
        return
    leg_failed(b, call, leg, code)


def leg_failed(b: B2bua, call: Call, leg: Leg, code: int) -> None:
    tr = call.transfer
    assert tr is not None
    if tr.consult is not None:  # the re-INVITE found no answer: the other call goes on
        fail(b, call, tr, code)
        return
    if not leg.over:
        leg.fire(LegInput.FAIL)
    leg.final = code
    if leg.fallback is not None and failover(code, rang=leg.rang):
        # As for any call out: the next trunk gets the same INVITE afresh.
        tr.leg = None
        _ring(b, call, tr, leg.fallback)
        return
    fail(b, call, tr, code)


def ring_timeout(b: B2bua, call: Call) -> None:
    tr = call.transfer
    if tr is None or tr.leg is None:
        return
    b.cancel_leg(tr.leg)
    fail(b, call, tr, 480)


def _answered(b: B2bua, call: Call, tr: Transfer, leg: Leg, resp: Response) -> None:
    assert leg.invite is not None
    dialog = Dialog.from_uac(leg.invite, resp)
    if (early := leg.early.get(resp.to_tag)) is not None:
        dialog.local_seq = early[0].local_seq
    b.track(call, leg, dialog)
    b.ack(leg, dialog.create_ack(leg.invite.cseq[0]))
    if leg.over:
        # It answered after we gave up on it (the 2xx crossed our CANCEL): end it.
        if leg.state is not LegState.ENDED:
            leg.fire(LegInput.ANSWER)
        b.send_in_dialog_untracked(leg, dialog.create_request("BYE"))
        return
    leg.fire(LegInput.ANSWER)
    leg.remote_sdp = resp.body
    session_timer.answered_as_uac(b, call, leg, resp)
    b.media_to(call, leg, resp.body)
    complete(b, call, tr, leg)


def complete(b: B2bua, call: Call, tr: Transfer, leg: Leg) -> None:
    """The new party answered: it takes the replaced party's place."""
    b.cancel_timer(call, RING)
    old = tr.replaced
    keep = call.other(old)
    if tr.notify and not tr.departed:
        notify(b, old, 200, final=True)
    if old.answered:
        b.bye(old)  # after the NOTIFY, so the transferor hears the outcome first
    _leave(call, old)
    if old.name == "a":
        call.a = leg
    else:
        call.b, call.forks = leg, []
    side: Side = "caller" if old.name == "a" else "callee"
    before = call.caller if side == "caller" else call.callee
    if side == "caller":
        call.caller = tr.party
    else:
        call.callee = tr.party
    call.devices = tuple(dict.fromkeys((*call.devices, *tr.devices)))
    if leg.trunk is not None:
        call.klass = "trunking"
    call.transfer = None
    call.held, call.on_hold = None, False  # the new party talks; a held one is resumed:
    if keep is not None and keep.answered and keep.dialog is not None \
            and anchor.on_hold(keep.local_sdp):
        _resume(b, call, keep)  # it talks to the new party now
    b.log("call.transferred", call_id=call.call_id, app=call.app_id, by=tr.by, side=side,
          to=tr.party.get("number"))
    b.publish(call, "call.transferred", {**call.event_data(), "party": side,
                                         "from": before, "to": tr.party, "by": tr.by})


def _leave(call: Call, leg: Leg) -> None:
    """``leg`` is no longer the call's; its dialog is kept known until the call is
    forgotten, so its late requests still match."""
    if leg not in call.gone:
        call.gone.append(leg)


def fail(b: B2bua, call: Call, tr: Transfer, code: int) -> None:
    """The new party will not come: the call stays as it was (or, if the replaced
    party already left, ends)."""
    b.cancel_timer(call, RING)
    call.transfer = None
    if tr.notify and not tr.departed and tr.replaced.answered:
        notify(b, tr.replaced, code, final=True)
    b.log("call.transfer_failed", call_id=call.call_id, app=call.app_id, by=tr.by,
          sip_code=code)
    b.publish(call, "call.transfer_failed", {**call.event_data(), "sip_code": code,
                                             "to": tr.party, "by": tr.by})
    if tr.departed:
        ending.hangup(b, call, None, "system")


def notify(b: B2bua, leg: Leg, code: int, *, final: bool) -> None:
    """RFC 3515 §2.4.5: the referred request's progress, as a sipfrag status line."""
    if leg.dialog is None:
        return
    state = "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION}"
    frag = f"SIP/2.0 {code} {_REASONS.get(code, 'Failed' if code >= 300 else 'OK')}\r\n"
    b.send_in_dialog_untracked(leg, leg.dialog.create_request(
        "NOTIFY", body=frag.encode(), content_type=SIPFRAG,
        headers=[("event", "refer"), ("subscription-state", state)]))
