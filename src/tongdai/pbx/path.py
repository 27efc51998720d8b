"""Path (RFC 3327): a device registered through an edge proxy is reached through it.

An edge proxy (``deploy/kamailio``) forwarding a REGISTER adds a Path header naming
itself. The registrar stores the values with the binding and echoes them in its 200
(§5.3). Any node then sends requests to that device to the first Path URI, carrying
the values as a pre-loaded Route set (RFC 3261 §8.1.2; loose routing, §16.12), the
Request-URI still the device's contact: the edge delivers them over the connection or
NAT pinhole it holds. So a TCP, websocket or NATed device is reachable from every node.

Only a Path whose first hop is the host the REGISTER came from is accepted: the
nearest proxy names itself (§4.2), and a device cannot make the nodes send INVITEs to
a third party's address by writing one.
"""

from __future__ import annotations

from collections.abc import Sequence

from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.peer import Peer, bare_host
from tongdai.sip.uri import NameAddr

# The transports a node can send over; the first hop says which with ;transport=.
_TRANSPORTS = frozenset({"udp", "tcp"})


def hop_peer(value: str) -> Peer:
    """The address of one Path or Route value (``<sip:host:port;lr>``): its host, its
    port (5060 by default) and its transport parameter (UDP by default). Raises
    RemoteProtocolError (400) for a value that does not parse or names a transport
    the node cannot send over."""
    uri = NameAddr.parse(value).uri
    if uri.scheme != "sip" or not uri.host:
        raise RemoteProtocolError(400, "Path must be a sip: URI with a host")
    transport = (dict(uri.params).get("transport") or "udp").lower()
    if transport not in _TRANSPORTS:
        raise RemoteProtocolError(400, f"Path transport {transport[:10]!r} is not supported")
    return Peer(transport, bare_host(uri.host), uri.port or 5060)


def refusal(path: Sequence[str], source: Peer) -> RemoteProtocolError | None:
    """Why a REGISTER's Path values cannot be stored, or None when they can (none at
    all, or the first hop is the host the REGISTER came from)."""
    if not path:
        return None
    try:
        first = hop_peer(path[0])
        for value in path[1:]:
            NameAddr.parse(value)
    except RemoteProtocolError as exc:
        return exc
    if first.host != bare_host(source.host):
        return RemoteProtocolError(403, "Path must start at the proxy that sent the REGISTER")
    return None


def next_hop(path: Sequence[str], source: Peer) -> Peer:
    """Where requests to a binding go: its first Path hop, else the address its
    REGISTER came from (``source``)."""
    return hop_peer(path[0]) if path else source
