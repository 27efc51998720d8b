"""The messages of a leg: INVITEs we send, responses we give, our Contact."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.pbx.b2bua.model import Leg
from tongdai.pbx.capabilities import DIALOG_ALLOW, SUPPORTED, USER_AGENT
from tongdai.sip import digest
from tongdai.sip.message import Headers, Request, Response, format_hostport, make_response
from tongdai.sip.peer import Peer
from tongdai.store.records import TrunkRec


def _quote(display: str) -> str:
    return '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '" ' if display else ""


@dataclass(slots=True, kw_only=True)
class Messages:
    domain: str
    host: str
    port: int  # set once the SIP socket is bound (port 0)

    def contact(self, peer: Peer) -> str:
        hp = format_hostport(self.host, self.port)
        # RFC 7118 §5.2: a browser reaches us back over its websocket only.
        tp = f";transport={peer.transport}" if peer.transport != "udp" else ""
        return f"<sip:tongdai@{hp}{tp}>"

    def invite(
        self, *, ruri: str, to_uri: str, from_user: str, from_display: str, body: bytes,
        leg: Leg, sip_call_id: str, route: tuple[str, ...] = (),
    ) -> Request:
        """An INVITE starting a dialog; ``route`` is a pre-loaded Route set (a device's
        Path, RFC 3327 §5.3), sent as is ahead of the Request-URI."""
        h = Headers()
        for value in route:
            h.add("route", value)
        h.add("max-forwards", 70)
        h.add("from", f"{_quote(from_display)}<sip:{from_user}@{self.domain}>"
                      f";tag={leg.local_tag}")
        h.add("to", f"<{to_uri}>")
        h.add("call-id", sip_call_id)
        h.add("cseq", "1 INVITE")
        h.add("contact", self.contact(leg.peer))
        h.add("allow", DIALOG_ALLOW)
        h.add("supported", ", ".join(SUPPORTED))
        h.add("user-agent", USER_AGENT)
        if body:
            h.add("content-type", "application/sdp")
        return Request(method="INVITE", uri=ruri, headers=h, body=body)

    def response(self, leg: Leg, status: int, reason: str = "", *, body: bytes = b"") -> Response:
        """A response on a leg where we are the UAS, with our To tag and Contact."""
        assert leg.invite is not None
        resp = make_response(
            leg.invite, status, reason, to_tag=leg.local_tag, body=body,
            content_type="application/sdp" if body else None,
        )
        if 100 < status < 300:
            resp.headers.add("contact", self.contact(leg.peer))
            # RFC 3261 §12.1.1: a response that makes a dialog carries the request's
            # Record-Route, so the caller's in-dialog requests pass the same proxies
            # (an edge in front of several nodes, deploy/kamailio).
            for value in leg.invite.headers.values("record-route"):
                resp.headers.add("record-route", value)
        if status >= 200:
            resp.headers.add("allow", DIALOG_ALLOW)
        resp.headers.add("server", USER_AGENT)
        return resp


def authorized(invite: Request, challenge: Response, trunk: TrunkRec,
               cnonce: str) -> Request | None:
    """The INVITE again with credentials for the carrier's 401/407 (RFC 3261 §22.2)."""
    header = "www-authenticate" if challenge.status == 401 else "proxy-authenticate"
    chal = digest.pick_challenge(challenge.headers.get_all(header))
    if chal is None or trunk.username is None or trunk.password is None:
        return None
    value = digest.authorization(
        chal, method="INVITE", uri=invite.uri, username=trunk.username,
        password=trunk.password.reveal(), cnonce=cnonce,
    )
    if value is None:
        return None
    h = invite.headers.copy()
    h.remove("via")
    h.remove("authorization")
    h.remove("proxy-authorization")
    h.set("cseq", f"{invite.cseq[0] + 1} INVITE")
    h.add("authorization" if challenge.status == 401 else "proxy-authorization", value)
    return Request(method="INVITE", uri=invite.uri, headers=h, body=invite.body)
