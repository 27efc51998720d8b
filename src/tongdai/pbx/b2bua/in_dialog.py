"""Requests inside a call's dialogs: ACK, BYE, and re-INVITE / UPDATE / INFO relayed to
the other leg (hold, resume, codec changes, DTMF), their SDP anchored on the way."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending, flow_call, refer, reliable, session_timer, transfer
from tongdai.pbx.b2bua.actions import Respond
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import LegInput
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua, Relay

RELAYED = frozenset({"INVITE", "UPDATE", "INFO"})


def on_request(b: B2bua, req: Request, peer: Peer, txn: str | None) -> None:
    """A request in one of our dialogs (a new INVITE goes to the driver's routing)."""
    key = (req.call_id, req.to_tag, req.from_tag)
    found = b.dialogs.get(key)
    if found is None:
        if txn is not None:
            # A BYE that crossed ours: the call is over and durable, say so.
            over = req.method == "BYE" and b.ended.known(key, b.now)
            b.emit(Respond(txn=txn, response=make_response(req, 200 if over else 481)))
        return
    call, leg = found
    if leg.dialog is not None and req.method != "ACK" and not leg.dialog.receive_request(req):
        if txn is not None:  # RFC 3261 §12.2.2: a CSeq lower than the last one
            b.emit(Respond(txn=txn, response=make_response(req, 500, "Out of Order CSeq")))
        return
    if transfer.intercept(b, call, leg, req, txn):
        return  # a leg that left the call, or the transferor leaving
    match req.method:
        case "ACK":
            _on_ack(b, call, leg, req)
        case "BYE":
            if txn is not None:
                # The 200 tells the peer the call is over: it goes once that is
                # durable (``ending.settle``), so no crash can lose the call after it.
                b.when_settled(call, functools.partial(
                    b.emit, Respond(txn=txn, response=make_response(req, 200))))
            if leg.answered:
                leg.fire(LegInput.BYE)  # even when the call already ended: no BYE back
            ending.hangup(b, call, leg, "caller" if leg.name == "a" else "callee")
        case "PRACK" if txn is not None:
            reliable.on_prack(b, call, leg, req, txn)
        case "REFER" if txn is not None:
            refer.on_refer(b, call, leg, req, txn)
        case method if method in RELAYED and txn is not None:
            _relay(b, call, leg, req, txn)
        case _:
            if txn is not None:
                b.emit(Respond(txn=txn, response=make_response(req, 501)))


def _on_ack(b: B2bua, call: Call, leg: Leg, req: Request) -> None:
    # RFC 3261 §13.2.2.4: the ACK of our 2xx carries the INVITE's CSeq number; any other
    # ACK in the dialog (a stray, or one for a re-INVITE) is not it.
    if leg.invite is None or req.cseq[0] != leg.invite.cseq[0]:
        return
    if flow_call.on_ack(b, call, leg, req):
        return
    other = call.b
    if leg.name != "a" or other is None or not other.ack_pending:
        return
    if other.dialog is None or other.invite is None:
        return
    # Late offer (RFC 3261 §13.2.1): leg a's answer arrives in its ACK, and goes on to
    # leg b in the ACK we held back.
    other.ack_pending = False
    body = b""
    if req.body and call.media is not None:
        b.media_to(call, leg, req.body)
        body = anchor.rewrite(req.body, *call.media.b)
    b.ack(other, other.dialog.create_ack(other.invite.cseq[0], body=body,
                                         content_type="application/sdp" if body else None))


def _relay(b: B2bua, call: Call, leg: Leg, req: Request, txn: str) -> None:
    from tongdai.pbx.b2bua.core import Relay

    if call.flow is not None and flow_call.on_request(b, call, leg, req, txn):
        return
    other = call.other(leg)
    if other is None or other.dialog is None or not other.answered or call.media is None:
        # RFC 3261 §14.2: a re-INVITE we cannot take now is 491; other requests find
        # no dialog behind us (481).
        status = 491 if req.method == "INVITE" else 481
        b.emit(Respond(txn=txn, response=make_response(req, status)))
        return
    if req.method == "UPDATE" and not req.body and leg.dialog is not None:
        # A session refresh with no offer (RFC 4028 §7.4): nothing for the other side
        # to hear, so it is answered here.
        ok = make_response(req, 200)
        ok.headers.add("contact", b.msg.contact(leg.peer))
        session_timer.answer_as_uas(b, call, leg, req, ok)
        b.emit(Respond(txn=txn, response=ok))
        return
    body = req.body
    ctype = req.headers.get("content-type")
    headers: list[tuple[str, str | int]] = []
    if req.method in ("INVITE", "UPDATE"):
        # The forwarded request refreshes the other leg's session too (RFC 4028 §7.4).
        headers = session_timer.request_headers(other)
        if body:
            call.on_hold = anchor.on_hold(body)
            b.media_to(call, leg, body)
            body = anchor.rewrite(body, *_local(call, other))
            other.local_sdp = body
    fwd = other.dialog.create_request(req.method, body=body, content_type=ctype,
                                      headers=headers)
    b.send_in_dialog(call, other, fwd, Relay(txn, req, leg))


def _local(call: Call, leg: Leg) -> tuple[str, int]:
    assert call.media is not None
    return call.media.a if leg.name == "a" else call.media.b


def on_relay_response(b: B2bua, call: Call, other: Leg, resp: Response, relay: Relay) -> None:
    if resp.status < 200:
        return
    body = resp.body
    if resp.status < 300 and relay.request.method == "INVITE" and other.dialog is not None:
        other.dialog.update_from_response(resp)
        b.ack(other, other.dialog.create_ack(resp.cseq[0]))
    if body and call.media is not None and relay.request.method in ("INVITE", "UPDATE"):
        b.media_to(call, other, body)
        body = anchor.rewrite(body, *_local(call, relay.leg))
    out = make_response(relay.request, resp.status, resp.reason, body=body,
                        content_type="application/sdp" if body else None)
    if resp.status < 300:
        out.headers.add("contact", b.msg.contact(relay.leg.peer))
        if relay.request.method in ("INVITE", "UPDATE"):
            # Both legs' sessions were refreshed (RFC 4028 §7.4, §9).
            if body:
                relay.leg.local_sdp = body
            session_timer.answered_as_uac(b, call, other, resp)
            session_timer.answer_as_uas(b, call, relay.leg, relay.request, out)
    b.emit(Respond(txn=relay.txn, response=out))


def relay_failed(b: B2bua, relay: Relay, code: int) -> None:
    """The other leg never answered the relayed request: say so to the one who sent it."""
    b.emit(Respond(txn=relay.txn, response=make_response(relay.request, code)))


def on_stray(b: B2bua, resp: Response) -> None:
    """A 2xx retransmitted after its transaction ended: ACK it again (§13.2.2.4)."""
    if resp.status // 100 != 2 or resp.cseq[1] != "INVITE":
        return
    found = b.dialogs.get((resp.call_id, resp.from_tag, resp.to_tag))
    if found is not None and found[1].dialog is not None:
        b.ack(found[1], found[1].dialog.create_ack(resp.cseq[0]))
