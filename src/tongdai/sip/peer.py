"""Where a SIP message came from or goes to, and where a response must be sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tongdai.sip.message import Request, Via

# A client's rport/received, with or without a value (RFC 3581 §4 grammar).
_RPORT = re.compile(r";\s*rport\s*(?:=[^;]*)?(?=;|$)", re.IGNORECASE)
_RECEIVED = re.compile(r";\s*received\s*(?:=[^;]*)?(?=;|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: for UDP a host and port, for TCP and websockets (RFC 7118)
    the connection's remote end.

    ``host`` is a bare address (IPv6 without brackets) or a name for the shell to resolve.
    """

    transport: str  # "udp" | "tcp" | "ws" | "wss"
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


def stamp_via(req: Request, via: Via, source: Peer) -> Peer:
    """Stamp a received request's top Via (``via``); return where its responses go.

    Responses always go to ``source``, the address the request really came from (over
    a connection, back on that connection, RFC 3261 §18.2.2). A ``received`` or
    ``rport`` value in the request is the client's claim, never a destination:
    RFC 3581 §4 has the *server* add them to reflect what it saw, and obeying them
    would let one forged request aim every response and retransmission at any
    address (a reflection amplifier). Sending to the source port even without
    ``rport`` is symmetric response routing, as PJSIP's ``force_rport``.

    The stamp itself: ``received`` when sent-by is not the source address (RFC 3261
    §18.2.1); with ``rport`` its value becomes the source port and ``received`` is
    added even when it equals sent-by (RFC 3581 §4). A client's own ``received`` or
    ``rport`` value is replaced by what we saw. Edited as text: this runs for nearly
    every request from a phone behind NAT.
    """
    params = via.params
    rport = params.get("rport")
    received = params.get("received")
    same_host = bare_host(via.host) == source.host
    if rport is None and received is None and same_host:
        return source
    raw = req.headers.pop_first("via") or ""
    if received is not None:
        raw = _RECEIVED.sub("", raw)
    if rport is not None:
        raw = _RPORT.sub(f";rport={source.port}", raw, count=1)
    if rport is not None or not same_host:
        raw = f"{raw};received={source.host}"
    req.headers.prepend("via", raw)
    return source
