"""Where a SIP message came from or goes to, and where a response must be sent."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.sip.message import Via


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
