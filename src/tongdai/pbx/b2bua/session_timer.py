"""RFC 4028 session timers, on each leg on its own: the interval a leg's peer and we
agreed on, who refreshes it, our refreshes, and ending a call whose peer vanished.

Each leg that negotiated a timer has an ``expire_<leg>`` timer, re-armed by every
refresh that succeeds on it (ours or the peer's); when we are the leg's refresher it
also has a ``refresh_<leg>`` timer at half the interval (§10). A refresh of ours that
gets 408 or 481, or a leg whose interval runs out, ends the whole call (§10).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tongdai.pbx.b2bua import ending
from tongdai.pbx.b2bua.model import Call, Leg
from tongdai.sip.message import Request, Response, param

if TYPE_CHECKING:
    from tongdai.pbx.b2bua.core import B2bua

TAG = "timer"  # the option tag (RFC 4028 §3)
# RFC 4028 §4: no interval below 90 s may be asked for; 1800 s is its recommendation.
MIN_SE = 90
SESSION_EXPIRES = 1800
# §10: the side that is not the refresher ends the session this long before expiry
# (a third of the interval, at most 32 s), so a refresh in flight can still arrive.
EXPIRY_MARGIN = 32.0


def interval_of(msg: Request | Response) -> tuple[int, str | None] | None:
    """The ``Session-Expires`` of a message: (seconds, refresher) or None (§4)."""
    value = msg.headers.get("session-expires")
    if value is None:
        return None
    try:
        seconds = int(value.split(";", 1)[0].strip())
    except ValueError:
        return None
    refresher = param(value, "refresher")
    return seconds, refresher.lower() if refresher else None


def supports(msg: Request | Response) -> bool:
    tags = [t.lower() for t in msg.headers.values("supported") + msg.headers.values("require")]
    return TAG in tags


def too_small(b: B2bua, req: Request) -> bool:
    """An INVITE asking for an interval below our Min-SE: it gets 422 (§8.1)."""
    got = interval_of(req)
    return got is not None and got[0] < b.limits.min_se


def offer(b: B2bua, req: Request) -> None:
    """Our INVITE asks for a session timer (§7.1); the callee picks the refresher."""
    if "session-expires" in req.headers:
        return
    req.headers.add("session-expires", b.limits.session_expires)
    req.headers.add("min-se", b.limits.min_se)


def retry_422(b: B2bua, leg: Leg, resp: Response) -> Request | None:
    """The callee found our interval too small: the INVITE again with its Min-SE (§7.4)."""
    if leg.invite is None:
        return None
    wanted = min_se_of_response(resp)
    asked = interval_of(leg.invite)
    if wanted <= 0 or (asked is not None and asked[0] >= wanted):
        return None  # nothing would change: the 422 stands
    h = leg.invite.headers.copy()
    h.remove("via")
    h.set("cseq", f"{leg.invite.cseq[0] + 1} INVITE")
    h.set("session-expires", wanted)
    h.set("min-se", wanted)
    return Request(method="INVITE", uri=leg.invite.uri, headers=h, body=leg.invite.body)


def min_se_of_response(resp: Response) -> int:
    try:
        return int((resp.headers.get("min-se") or "0").split(";", 1)[0])
    except ValueError:
        return 0


def reject_422(b: B2bua, resp: Response) -> None:
    resp.headers.add("min-se", b.limits.min_se)


# Negotiation -----------------------------------------------------------------------


def answered_as_uac(b: B2bua, call: Call, leg: Leg, resp: Response) -> None:
    """A 2xx to our INVITE (or refresh) on ``leg``: the interval the peer chose (§7.2)."""
    got = interval_of(resp)
    if got is None:
        # No Session-Expires in the 2xx: the peer does not do session timers.
        _stop(b, call, leg)
        return
    seconds, refresher = got
    # The refresher parameter names the transaction's roles: we were its UAC.
    leg.session_expires = max(seconds, 1)
    leg.we_refresh = refresher != "uas"
    if "allow" in resp.headers:
        leg.peer_allows_update = _allows_update(resp)
    _arm(b, call, leg)


def answer_as_uas(b: B2bua, call: Call, leg: Leg, req: Request, resp: Response) -> None:
    """Our 2xx to the peer's INVITE or refresh on ``leg``: agree on an interval (§9)."""
    got = interval_of(req)
    if got is None and not supports(req):
        if leg.session_expires:
            # A bare refresh in a session that negotiated a timer: same interval, same
            # refresher (peers that refresh often leave the header out).
            _add(resp, leg, "uas" if leg.we_refresh else "uac")
            _arm(b, call, leg)
        else:
            _stop(b, call, leg)
        return
    # The peer's interval when it asked for one (never below our Min-SE), else ours.
    seconds = b.limits.session_expires if got is None else max(got[0], b.limits.min_se)
    refresher = got[1] if got is not None else None
    # Only a peer that supports the extension can be made the refresher (§9).
    peer_refreshes = refresher == "uac" and supports(req)
    leg.session_expires = seconds
    leg.we_refresh = not peer_refreshes
    leg.peer_allows_update = _allows_update(req)
    _add(resp, leg, "uac" if peer_refreshes else "uas")
    if supports(req):
        resp.headers.add("require", TAG)
    _arm(b, call, leg)


def request_headers(leg: Leg) -> list[tuple[str, str | int]]:
    """What a re-INVITE/UPDATE we send on ``leg`` says about its timer (we are UAC)."""
    if not leg.session_expires:
        return []
    who = "uac" if leg.we_refresh else "uas"
    return [("supported", TAG), ("session-expires", f"{leg.session_expires};refresher={who}")]


def _allows_update(msg: Request | Response) -> bool:
    return "UPDATE" in (m.upper() for m in msg.headers.values("allow"))


def _add(resp: Response, leg: Leg, who: str) -> None:
    resp.headers.add("session-expires", f"{leg.session_expires};refresher={who}")


def _arm(b: B2bua, call: Call, leg: Leg) -> None:
    se = leg.session_expires
    if leg.we_refresh:
        b.set_timer(call, f"refresh_{leg.name}", se / 2)
    else:
        b.cancel_timer(call, f"refresh_{leg.name}")
    b.set_timer(call, f"expire_{leg.name}", se - min(EXPIRY_MARGIN, se / 3))


def _stop(b: B2bua, call: Call, leg: Leg) -> None:
    leg.session_expires = 0
    b.cancel_timer(call, f"refresh_{leg.name}")
    b.cancel_timer(call, f"expire_{leg.name}")


# Refreshes and expiry --------------------------------------------------------------


def refresh(b: B2bua, call: Call, leg: Leg) -> None:
    """Half the interval has passed: refresh the leg's session (§7.4, §10). UPDATE when
    the peer allows it (no SDP to renegotiate), else a re-INVITE with our last SDP."""
    dialog = leg.dialog
    if dialog is None or not leg.answered or call.finished:
        return
    headers = request_headers(leg)
    if leg.peer_allows_update:
        req = dialog.create_request("UPDATE", headers=headers)
    else:
        body = leg.local_sdp
        req = dialog.create_request("INVITE", body=body, headers=headers,
                                    content_type="application/sdp" if body else None)
    b.log("call.session_refresh", level=logging.DEBUG, call_id=call.call_id, leg=leg.name,
          method=req.method)
    b.send_refresh(call, leg, req)


def on_refresh_response(b: B2bua, call: Call, leg: Leg, req: Request, resp: Response) -> None:
    if resp.status < 200:
        return
    if req.method == "INVITE" and resp.status < 300 and leg.dialog is not None:
        b.ack(leg, leg.dialog.create_ack(resp.cseq[0]))
    if resp.status < 300:
        answered_as_uac(b, call, leg, resp)
    elif resp.status in (408, 481):
        refresh_failed(b, call, leg, resp.status)
    # Any other failure: the session lives until its interval runs out (§10).


def refresh_failed(b: B2bua, call: Call, leg: Leg, code: int) -> None:
    """§10: a refresh that times out or finds no dialog ends the session."""
    if call.finished:
        return
    b.log("call.session_expired", call_id=call.call_id, app=call.app_id, leg=leg.name,
          code=code)
    ending.hangup(b, call, None, "system")


def expired(b: B2bua, call: Call, leg: Leg) -> None:
    """No refresh arrived within the interval: the peer is gone (§10)."""
    if call.finished:
        return
    b.log("call.session_expired", call_id=call.call_id, app=call.app_id, leg=leg.name,
          code=0)
    ending.hangup(b, call, None, "system")
