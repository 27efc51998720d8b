"""What a tongdai node's environment says, checked as tongdai itself would read it,
and the host ports it makes the node bind (for the deployment files' tests)."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.settings import Settings, load_settings

PREFIX = "TONGDAI_"


@dataclass(frozen=True, slots=True)
class PortRange:
    """Ports ``first``..``last`` of ``proto`` that ``owner`` binds on the host."""

    owner: str
    proto: str
    first: int
    last: int

    def overlaps(self, other: PortRange) -> bool:
        return (self.proto == other.proto and self.first <= other.last
                and other.first <= self.last)


def node_settings(env: dict[str, str]) -> Settings:
    """The settings a node started with ``env`` runs with; every variable must be a
    tongdai setting (a typo would be silently ignored by the node's environment)."""
    unknown = [k for k in env if not k.startswith(PREFIX)
               or k[len(PREFIX):].lower() not in Settings.model_fields]
    assert not unknown, f"not tongdai settings: {unknown}"
    return load_settings(**{k[len(PREFIX):].lower(): v for k, v in env.items()})


def node_ports(owner: str, s: Settings) -> list[PortRange]:
    """SIP (UDP and TCP), websockets, HTTP and the RTP range of a node."""
    ports = [PortRange(owner, "udp", s.sip_port, s.sip_port),
             PortRange(owner, "tcp", s.sip_port, s.sip_port),
             PortRange(owner, "tcp", s.http_port, s.http_port)]
    ports += [PortRange(owner, "tcp", p, p) for p in (s.sip_ws_port, s.sip_wss_port) if p]
    lo, hi = s.rtp_port_range
    return [*ports, PortRange(owner, "udp", lo, hi)]


def parse_ports(owner: str, specs: list[str]) -> list[PortRange]:
    """``["5060/udp", "30000-39999/udp"]`` as ranges."""
    out = []
    for spec in specs:
        ports, _, proto = spec.partition("/")
        first, _, last = ports.partition("-")
        out.append(PortRange(owner, proto, int(first), int(last or first)))
    return out


def collisions(ranges: list[PortRange]) -> list[tuple[PortRange, PortRange]]:
    """Pairs of ranges that claim the same port (one owner may use a port for UDP and
    TCP, never twice for one protocol)."""
    return [(a, b) for i, a in enumerate(ranges) for b in ranges[i + 1:] if a.overlaps(b)]
