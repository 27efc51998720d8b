"""Building the messages of a leg: INVITEs we send, responses we give, our Contact."""

from __future__ import annotations

import os
from typing import Any

from tongdai import __version__
from tongdai.pbx.call import Leg
from tongdai.settings import Settings
from tongdai.sip import digest
from tongdai.sip.message import Headers, Request, Response, format_hostport, make_response
from tongdai.sip.peer import Peer
from tongdai.store.records import TrunkRec

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
USER_AGENT = f"tongdai/{__version__}"


def _quote(display: str) -> str:
    return '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '" ' if display else ""


class LegFactory:
    def __init__(self, *, shell: Any, settings: Settings) -> None:
        self.shell = shell
        self.settings = settings
        self.host = settings.sip_host
        self.port = settings.sip_port

    def contact(self, peer: Peer) -> str:
        hp = format_hostport(self.host, self.port)
        tp = ";transport=tcp" if peer.transport == "tcp" else ""
        return f"<sip:tongdai@{hp}{tp}>"

    def invite(
        self, *, ruri: str, to_uri: str, from_user: str, from_display: str, body: bytes,
        leg: Leg, trunk: TrunkRec | None = None,
    ) -> Request:
        ep = self.shell.endpoint
        leg.local_tag = ep.new_tag()
        h = Headers()
        h.add("max-forwards", 70)
        h.add("from", f"{_quote(from_display)}<sip:{from_user}@{self.settings.domain}>"
                      f";tag={leg.local_tag}")
        h.add("to", f"<{to_uri}>")
        h.add("call-id", ep.new_call_id())
        h.add("cseq", "1 INVITE")
        h.add("contact", self.contact(leg.peer))
        h.add("allow", ALLOW)
        h.add("user-agent", USER_AGENT)
        if body:
            h.add("content-type", "application/sdp")
        leg.trunk = trunk
        return Request(method="INVITE", uri=ruri, headers=h, body=body)

    def authorized(self, invite: Request, challenge: Response, trunk: TrunkRec) -> Request | None:
        """The INVITE again with credentials for the carrier's 401/407 (RFC 3261 §22.2)."""
        header = "www-authenticate" if challenge.status == 401 else "proxy-authenticate"
        chal = digest.pick_challenge(challenge.headers.get_all(header))
        if chal is None or trunk.username is None or trunk.password is None:
            return None
        value = digest.authorization(
            chal, method="INVITE", uri=invite.uri, username=trunk.username,
            password=trunk.password, cnonce=os.urandom(8).hex(),
        )
        if value is None:
            return None
        h = invite.headers.copy()
        h.remove("via")
        h.remove("authorization")
        h.remove("proxy-authorization")
        num = invite.cseq[0] + 1
        h.set("cseq", f"{num} INVITE")
        h.add("authorization" if challenge.status == 401 else "proxy-authorization", value)
        return Request(method="INVITE", uri=invite.uri, headers=h, body=invite.body)

    def response(self, leg: Leg, status: int, reason: str = "", *, body: bytes = b"") -> Response:
        """A response on a leg where we are the UAS, with our To tag and Contact."""
        assert leg.invite is not None
        resp = make_response(
            leg.invite, status, reason, to_tag=leg.local_tag, body=body,
            content_type="application/sdp" if body else None,
        )
        if 100 < status < 300:
            resp.headers.add("contact", self.contact(leg.peer))
        if status >= 200:
            resp.headers.add("allow", ALLOW)
        resp.headers.add("server", USER_AGENT)
        return resp
