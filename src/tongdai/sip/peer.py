"""Where a SIP message came from or goes to, and where a response must be sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tongdai.sip.message import Request, Via

_RPORT = re.compile(r";\s*rport\s*(?=;|$)", re.IGNORECASE)
_RECEIVED = re.compile(r";\s*received\s*=[^;]*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: for UDP a host and port, for TCP the connection's remote end.

    ``host`` is a bare address (IPv6 without brackets) or a name for the shell to resolve.
    """

    transport: str  # "udp" | "tcp"
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits for us (RFC 3261 §17: timers A/E/G are off)."""
        return self.transport != "udp"


def bare_host(host: str) -> str:
    """``[::1]`` → ``::1``; anything else unchanged, lower-cased."""
    if host.startswith("["):
        return host[1:-1].lower()
    return host.lower()


def response_peer(via: Via, source: Peer) -> Peer:
    """Where a response to a request with top ``via`` goes (RFC 3261 §18.2.2, RFC 3581 §4).

    Over a connection the response goes back on it (``source``). Over UDP it goes to
    ``received`` (else the sent-by host) at ``rport`` (else the sent-by port, else 5060).
    """
    if source.reliable:
        return source
    params = via.params
    received = params.get("received")
    host = bare_host(received) if received else bare_host(via.host)
    rport = params.get("rport")
    port = int(rport) if rport and rport.isdigit() else via.port or 5060
    if host == source.host and port == source.port:
        return source
    return Peer(source.transport, host, port)


def stamp_via(req: Request, via: Via, source: Peer) -> Peer:
    """Stamp a received request's top Via (``via``) and return where responses go.

    RFC 3261 §18.2.1: ``received`` when sent-by is not the source address; RFC 3581
    §4: an empty ``rport`` gets the source port, and then ``received`` is added even
    when it equals sent-by. Edited as text: this runs for nearly every request from
    a phone behind NAT.
    """
    params = via.params
    rport = params.get("rport")
    if rport != "" and bare_host(via.host) == source.host:
        return response_peer(via, source)
    raw = req.headers.pop_first("via") or ""
    if "received" in params:
        raw = _RECEIVED.sub("", raw)
    if rport == "":
        raw = _RPORT.sub(f";rport={source.port}", raw, count=1)
    req.headers.prepend("via", f"{raw};received={source.host}")
    if source.reliable or rport == "":
        return source
    port = int(rport) if rport and rport.isdigit() else via.port or 5060
    return Peer(source.transport, source.host, port)
