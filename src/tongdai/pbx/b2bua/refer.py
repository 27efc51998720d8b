"""Transfers asked for by phones: REFER (RFC 3515), blind or attended (RFC 3891).

A phone sends REFER in the dialog of the party that leaves — the transferor. It gets
202; the progress goes back to it as NOTIFYs of the REFER's implicit subscription
carrying message/sipfrag (§2.4.5): ``100 Trying`` at once, then the new party's final
answer (``200 OK``, or the failure, ``486 Busy Here``...), which ends the
subscription. A blind REFER's Refer-To is routed in the app's dial plan
(``RouteTransfer`` → ``transfer.TransferTo``) and rung as any transfer. An attended
one names, in its ``Replaces``, the transferor's dialog of another call of ours (the
consultation): that call's other party is re-INVITEd onto this call's media in the
transferor's place, nobody rings, and the consultation ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tongdai.pbx import anchor
from tongdai.pbx.b2bua import ending, session_timer
from tongdai.pbx.b2bua.actions import Respond, RouteTransfer, SendRequest
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.pbx.b2bua.state import CallState
from tongdai.pbx.b2bua.transfer import Transfer, codec_in_use, complete, fail, notify
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.uri import NameAddr, unescape

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua


def on_refer(b: B2bua, call: Call, leg: Leg, req: Request, txn: str) -> None:
    """A REFER in ``leg``'s dialog: its party wants the other party sent elsewhere."""
    refer_to = req.headers.get_all("refer-to")
    if len(refer_to) != 1:  # RFC 3515 §2.4.1: exactly one Refer-To
        b.emit(Respond(txn=txn, response=make_response(req, 400, "Bad Refer-To")))
        return
    try:
        uri = NameAddr.parse(refer_to[0]).uri
    except (RemoteProtocolError, ValueError):
        b.emit(Respond(txn=txn, response=make_response(req, 400, "Bad Refer-To")))
        return
    other = call.other(leg)
    if call.state is not CallState.ANSWERED or not leg.answered or other is None \
            or not other.answered or leg.dialog is None:
        b.emit(Respond(txn=txn, response=make_response(req, 403)))
        return
    if call.transfer is not None:
        b.emit(Respond(txn=txn, response=make_response(req, 491)))
        return
    replaces = next((v for k, v in uri.headers if k.lower() == "replaces"), None)
    found = None
    if replaces is not None:
        found = _replaced_dialog(b, call, replaces)
        if found is None:
            # RFC 3891 §3: no such dialog (of this app, answered) to take the party from.
            b.emit(Respond(txn=txn, response=make_response(req, 481)))
            return
    elif not uri.user:
        b.emit(Respond(txn=txn, response=make_response(req, 400, "Bad Refer-To")))
        return
    accepted = make_response(req, 202)
    accepted.headers.add("contact", b.msg.contact(leg.peer))
    b.emit(Respond(txn=txn, response=accepted))
    call.transfer = Transfer(replaced=leg, by="refer", notify=True)
    notify(b, leg, 100, final=False)
    if found is not None:
        _join(b, call, call.transfer, *found)
        return
    b.emit(RouteTransfer(call_id=call.call_id, app_id=call.app_id, to=uri.user))


def _replaced_dialog(b: B2bua, call: Call, replaces: str) -> tuple[Call, Leg] | None:
    """The other call a Replaces names (by the transferor's dialog in it, RFC 3891 §3)
    and the party to bring over from it: the app's, answered, not being transferred."""
    try:
        parts = unescape(replaces).split(";")
    except RemoteProtocolError:
        return None
    params = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in parts[1:])}
    cid, to_tag, from_tag = parts[0].strip(), params.get("to-tag", ""), params.get("from-tag", "")
    # Our key is (Call-ID, our tag, theirs); the transferor may name the tags either way.
    found = b.dialogs.get((cid, to_tag, from_tag)) or b.dialogs.get((cid, from_tag, to_tag))
    if found is None:
        return None
    other_call, leg = found
    party = other_call.other(leg)
    if other_call is call or other_call.app_id != call.app_id \
            or other_call.transfer is not None \
            or other_call.state is not CallState.ANSWERED or not leg.answered \
            or party is None or not party.answered or party.dialog is None:
        return None
    return other_call, party


def _join(b: B2bua, call: Call, tr: Transfer, consult: Call, party: Leg) -> None:
    """Attended transfer: ``party`` (talking to the transferor in ``consult``) is
    re-INVITEd to this call's media, in the replaced side's place."""
    from tongdai.pbx.b2bua.core import Client

    assert call.media is not None and party.dialog is not None
    tr.consult, tr.leg = consult, party
    tr.party = consult.caller if party is consult.a else consult.callee
    tr.devices = consult.devices
    local = call.media.a if tr.replaced.name == "a" else call.media.b
    codec = codec_in_use(call)
    body = anchor.offer(*local, codecs=(codec,) if codec else ("0", "8"))
    req = party.dialog.create_request("INVITE", body=body, content_type="application/sdp",
                                      headers=session_timer.request_headers(party))
    tr.offer = body
    b.log("call.transfer", call_id=call.call_id, app=call.app_id, by=tr.by,
          to=tr.party.get("number"), replaces=consult.call_id)
    ref = b.ids.ref()
    b.client[ref] = Client(call, party, "invite")
    b.emit(SendRequest(ref=ref, request=req, peer=party.peer))


def joined(b: B2bua, call: Call, tr: Transfer, consult: Call, leg: Leg, resp: Response,
            again: bool) -> None:
    """The answer to the re-INVITE that brings ``leg`` over from ``consult``."""
    if resp.status < 200 or again:
        if again and resp.status < 300 and leg.dialog is not None:
            b.ack(leg, leg.dialog.create_ack(resp.cseq[0]))
        return
    if leg.dialog is not None and resp.status < 300:
        leg.dialog.update_from_response(resp)
        b.ack(leg, leg.dialog.create_ack(resp.cseq[0]))
    if resp.status >= 300 or consult.finished or leg.dialog is None:
        fail(b, call, tr, resp.status if resp.status >= 300 else 487)
        return
    # ``leg`` leaves the consultation call, which ends (its transferor's leg gets BYE
    # and the call its record), and takes the replaced side's place in this one.
    for timer in (f"refresh_{leg.name}", f"expire_{leg.name}"):
        b.cancel_timer(consult, timer)
    if consult.a is leg:
        consult.a = None
    else:
        consult.b, consult.forks = None, []
    ending.hangup(b, consult, None, "transfer")
    leg.name = tr.replaced.name
    b.dialogs[leg.dialog.id] = (call, leg)
    leg.remote_sdp, leg.local_sdp = resp.body, tr.offer
    session_timer.answered_as_uac(b, call, leg, resp)
    b.media_to(call, leg, resp.body)
    complete(b, call, tr, leg)
