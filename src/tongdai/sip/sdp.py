"""SDP (RFC 4566) read and rewritten for offer/answer (RFC 3264) and media relaying.

Lines tongdai does not interpret are kept in order, so a rewritten description
differs from the original only where it was changed (connection, ports, RTCP,
direction, origin version). The parser is tolerant of LF-only line ends and
trailing whitespace; anything it cannot make sense of is an ``SdpError``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

__all__ = [
    "DIRECTIONS", "STATIC_PT", "Connection", "Media", "Origin", "SdpError",
    "SessionDescription",
]

# RFC 3551 §6, table 4: static audio payload types, usable without an a=rtpmap.
STATIC_PT: dict[int, str] = {
    0: "PCMU/8000", 3: "GSM/8000", 4: "G723/8000", 5: "DVI4/8000", 6: "DVI4/16000",
    7: "LPC/8000", 8: "PCMA/8000", 9: "G722/8000", 10: "L16/44100/2", 11: "L16/44100",
    12: "QCELP/8000", 13: "CN/8000", 14: "MPA/90000", 15: "G728/8000", 16: "DVI4/11025",
    17: "DVI4/22050", 18: "G729/8000",
}
# RFC 4566 §6 / RFC 3264 §5.1: the direction attributes; sendrecv when none is given.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# Session-level lines written before c= (RFC 4566 §5: v o s i u e p c b t r z k a).
_BEFORE_C = frozenset("iuep")
_MEDIA_BEFORE_C = frozenset("i")

Attribute = tuple[str, str | None]


class SdpError(ValueError):
    """The body is not an SDP description we can read."""


@dataclass(frozen=True, slots=True)
class Origin:
    """o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address> (§5.2)."""

    username: str
    session_id: str
    version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6 or not (parts[2].isascii() and parts[2].isdigit()):
            raise SdpError(f"Malformed o= line {value[:60]!r}")
        return cls(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """c=<nettype> <addrtype> <connection-address> (§5.7); multicast suffixes kept."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpError(f"Malformed c= line {value[:60]!r}")
        return cls(parts[0], parts[1], parts[2])

    @classmethod
    def for_host(cls, host: str) -> Connection:
        """A connection to ``host``, IP4 or IP6 picked from the address."""
        host = host.strip("[]")
        return cls("IN", "IP6" if ":" in host else "IP4", host)

    @property
    def host(self) -> str:
        """The address without a multicast /ttl/count suffix."""
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


def _find(attributes: list[Attribute], name: str) -> str | None:
    for k, v in attributes:
        if k == name:
            return "" if v is None else v
    return None


def _direction_of(attributes: list[Attribute]) -> str | None:
    for k, v in attributes:
        if v is None and k in DIRECTIONS:
            return k
    return None


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")


def _attr_line(k: str, v: str | None) -> str:
    return f"a={k}" if v is None else f"a={k}:{v}"


@dataclass(slots=True)
class Media:
    """One m= section (§5.14) and the lines that follow it."""

    kind: str  # audio, video, ...
    port: int
    proto: str  # RTP/AVP, RTP/SAVP, ...
    formats: list[str]
    port_count: int | None = None  # m=<media> <port>/<number of ports>
    connection: Connection | None = None  # media-level c=, when given
    lines: list[tuple[str, str]] = field(default_factory=list)  # i=, b=, k=, unknown
    attributes: list[Attribute] = field(default_factory=list)
    # The session-level direction in force when parsed (RFC 3264 §5.1).
    inherited_direction: str | None = field(default=None, compare=False, repr=False)

    def attribute(self, name: str) -> str | None:
        """The first ``a=name[:value]``: its value, "" for a flag, None when absent."""
        return _find(self.attributes, name)

    def remove_attribute(self, name: str) -> None:
        self.attributes = [kv for kv in self.attributes if kv[0] != name]

    def rtpmap(self) -> dict[int, str]:
        """Payload type -> "encoding/clock[/channels]" for every listed format.

        An a=rtpmap wins; static payload types (RFC 3551) need none.
        """
        maps: dict[str, str] = {}
        for k, v in self.attributes:
            if k == "rtpmap" and v:
                fmt, _, enc = v.partition(" ")
                maps.setdefault(fmt, enc.strip())
        out: dict[int, str] = {}
        for f in self.formats:
            if not (f.isascii() and f.isdigit()):
                continue
            pt = int(f)
            name = maps.get(f) or STATIC_PT.get(pt)
            if name:
                out[pt] = name
        return out

    @property
    def direction(self) -> str:
        """sendrecv/sendonly/recvonly/inactive: media level, else session level."""
        return _direction_of(self.attributes) or self.inherited_direction or "sendrecv"

    def set_direction(self, direction: str) -> None:
        """Write ``direction`` as this media's only direction attribute."""
        _check_direction(direction)
        attrs = self.attributes
        at = next((i for i, (k, v) in enumerate(attrs) if v is None and k in DIRECTIONS), None)
        kept = [kv for kv in attrs if not (kv[1] is None and kv[0] in DIRECTIONS)]
        kept.insert(len(kept) if at is None else at, (direction, None))
        self.attributes = kept
        self.inherited_direction = None

    def with_direction(self, direction: str) -> Media:
        """A copy with ``direction`` set; this one is unchanged."""
        out = copy.deepcopy(self)
        out.set_direction(direction)
        return out

    @property
    def rtcp_port(self) -> int:
        """Where RTCP goes: a=rtcp (RFC 3605) or the RTP port + 1 (RFC 3550 §11)."""
        v = self.attribute("rtcp")
        if v:
            p = v.split()[0]
            if p.isascii() and p.isdigit():
                return int(p)
        return self.port + 1

    def set_rtcp(self, port: int | None, address: str | None = None) -> None:
        """Rewrite the RFC 3605 a=rtcp attribute, or drop it (``port`` None).

        A port that is RTP + 1 at the connection address is the default, so no
        attribute is written for it.
        """
        attrs = self.attributes
        at = next((i for i, (k, _) in enumerate(attrs) if k == "rtcp"), len(attrs))
        attrs = [kv for kv in attrs if kv[0] != "rtcp"]
        if port is not None and (port != self.port + 1 or address is not None):
            value = str(port)
            if address is not None:
                c = Connection.for_host(address)
                value = f"{port} {c.nettype} {c.addrtype} {c.address}"
            attrs.insert(min(at, len(attrs)), ("rtcp", value))
        self.attributes = attrs

    def _serialize(self, out: list[str]) -> None:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out.append(" ".join((f"m={self.kind}", port, self.proto, *self.formats)))
        out.extend(f"{t}={v}" for t, v in self.lines if t in _MEDIA_BEFORE_C)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"{t}={v}" for t, v in self.lines if t not in _MEDIA_BEFORE_C)
        out.extend(_attr_line(k, v) for k, v in self.attributes)


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body: session-level fields and its media sections."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    media: list[Media] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # i u e p b t r z k, unknown
    version: int = 0

    @classmethod
    def parse(cls, body: bytes) -> SessionDescription:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not UTF-8") from None
        version: int | None = None
        origin: Origin | None = None
        name: str | None = None
        connection: Connection | None = None
        lines: list[tuple[str, str]] = []
        attributes: list[Attribute] = []
        media: list[Media] = []
        for raw in text.split("\n"):
            line = raw.strip()
            if not line:
                continue
            t, v = line[0], line[2:]
            if line[1:2] != "=" or not (t.isascii() and t.isalpha()):
                raise SdpError(f"Malformed SDP line {line[:60]!r}")
            if version is None:
                # RFC 4566 §5: "v=0" comes first.
                if t != "v" or v != "0":
                    raise SdpError("SDP must start with v=0")
                version = 0
                continue
            m = media[-1] if media else None
            if t == "m":
                media.append(_parse_m(v))
            elif t == "a":
                k, sep, val = v.partition(":")
                (m.attributes if m else attributes).append((k, val if sep else None))
            elif t == "c" and (m.connection if m else connection) is None:
                if m:
                    m.connection = Connection.parse(v)
                else:
                    connection = Connection.parse(v)
            elif m:
                m.lines.append((t, v))
            elif t == "o" and origin is None:
                origin = Origin.parse(v)
            elif t == "s" and name is None:
                name = v
            elif t == "v":
                raise SdpError("More than one v= line")
            else:
                lines.append((t, v))
        if origin is None or name is None:
            raise SdpError("SDP lacks its o= or s= line")
        inherited = _direction_of(attributes)
        for m in media:
            m.inherited_direction = inherited
        return cls(origin, name, connection, media, attributes, lines)

    def serialize(self) -> bytes:
        # RFC 4566 §5.3: "s= " (one space) when the session has no name.
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name or ' '}"]
        out.extend(f"{t}={v}" for t, v in self.lines if t in _BEFORE_C)
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"{t}={v}" for t, v in self.lines if t not in _BEFORE_C)
        out.extend(_attr_line(k, v) for k, v in self.attributes)
        for m in self.media:
            m._serialize(out)
        out.append("")
        return "\r\n".join(out).encode("utf-8")

    def bump_version(self) -> None:
        """Increment o='s version, as every changed re-offer must (RFC 3264 §8)."""
        self.origin = replace(self.origin, version=self.origin.version + 1)

    def media_address(self, m: Media) -> str | None:
        """The connection address that applies to ``m`` (media level wins)."""
        c = m.connection or self.connection
        return c.host if c is not None else None

    def set_connection(self, host: str) -> None:
        """Point every media stream at ``host`` (c= at session and media level).

        The origin's address names the session's creator, which is now us.
        """
        c = Connection.for_host(host)
        self.connection = c
        for m in self.media:
            if m.connection is not None:
                m.connection = c
        self.origin = replace(self.origin, addrtype=c.addrtype, address=c.address)

    @property
    def direction(self) -> str:
        """The session-level direction attribute, sendrecv when absent."""
        return _direction_of(self.attributes) or "sendrecv"

    def set_direction(self, direction: str) -> None:
        """Set ``direction`` on every media section (dropping a session-level one)."""
        _check_direction(direction)
        self.attributes = [kv for kv in self.attributes if not (
            kv[1] is None and kv[0] in DIRECTIONS)]
        for m in self.media:
            m.set_direction(direction)

    def with_direction(self, direction: str) -> SessionDescription:
        """A copy with every media section in ``direction``; this one is unchanged."""
        out = copy.deepcopy(self)
        out.set_direction(direction)
        return out

    @property
    def on_hold(self) -> bool:
        """Whether the description puts its streams on hold (RFC 3264 §8.4)."""
        for m in self.media:
            c = m.connection or self.connection
            # RFC 3264 §8.4 (and RFC 2543 before it): c=0.0.0.0 is the old way to hold.
            if m.direction in ("sendonly", "inactive") or (c is not None and c.host == "0.0.0.0"):
                return True
        return False


def _parse_m(value: str) -> Media:
    # m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"Malformed m= line {value[:60]!r}")
    port, slash, count = parts[1].partition("/")
    if not (port.isascii() and port.isdigit() and int(port) < 65536) or (
        slash and not (count.isascii() and count.isdigit())
    ):
        raise SdpError(f"Malformed port in m= line {value[:60]!r}")
    return Media(parts[0], int(port), parts[2], parts[3:], int(count) if slash else None)
