"""SDP (RFC 4566) read and rewritten just enough for offer/answer (RFC 3264) and relaying.

Unknown lines are kept, in order, so a rewritten description differs from the
original only where tongdai changed it (connection, ports, RTCP attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATIC_PT = {"0": "PCMU/8000", "3": "GSM/8000", "8": "PCMA/8000", "9": "G722/8000",
             "18": "G729/8000"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """The body is not an SDP description we can read."""


@dataclass
class Media:
    kind: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None  # "IN IP4 1.2.3.4" at media level
    lines: list[tuple[str, str]] = field(default_factory=list)  # other lines (i=, b=, a=...)

    @property
    def attributes(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for t, v in self.lines:
            if t == "a":
                k, sep, val = v.partition(":")
                out.append((k, val if sep else None))
        return out

    def attribute(self, name: str) -> str | None:
        for k, v in self.attributes:
            if k == name:
                return v if v is not None else ""
        return None

    def rtpmap(self) -> dict[int, str]:
        out = {int(f): STATIC_PT[f] for f in self.formats if f in STATIC_PT}
        for k, v in self.attributes:
            if k == "rtpmap" and v:
                pt, _, enc = v.partition(" ")
                if pt.isdigit():
                    out[int(pt)] = enc.strip()
        return out

    @property
    def direction(self) -> str:
        for k, _ in self.attributes:
            if k in DIRECTIONS:
                return k
        return "sendrecv"

    @property
    def rtcp_port(self) -> int:
        v = self.attribute("rtcp")
        if v:
            p = v.split()[0]
            if p.isdigit():
                return int(p)
        return self.port + 1

    def set_rtcp(self, port: int | None) -> None:
        """Rewrite (or drop, with None) the RFC 3605 ``a=rtcp`` attribute."""
        self.lines = [(t, v) for t, v in self.lines if not (t == "a" and v.startswith("rtcp:"))]
        if port is not None and port != self.port + 1:
            self.lines.append(("a", f"rtcp:{port}"))


@dataclass
class SessionDescription:
    head: list[tuple[str, str]]  # session-level lines, in order
    media: list[Media]

    @classmethod
    def parse(cls, body: bytes) -> SessionDescription:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("SDP is not UTF-8") from exc
        head: list[tuple[str, str]] = []
        media: list[Media] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"bad SDP line {line[:40]!r}")
            t, v = line[0], line[2:]
            if t == "m":
                parts = v.split()
                if len(parts) < 3 or not parts[1].split("/")[0].isdigit():
                    raise SdpError("bad m= line")
                media.append(Media(parts[0], int(parts[1].split("/")[0]), parts[2], parts[3:]))
            elif media:
                if t == "c":
                    media[-1].connection = v
                else:
                    media[-1].lines.append((t, v))
            else:
                head.append((t, v))
        if not head or head[0] != ("v", "0"):
            raise SdpError("SDP must start with v=0")
        return cls(head, media)

    def _get(self, t: str) -> str | None:
        for k, v in self.head:
            if k == t:
                return v
        return None

    @property
    def connection(self) -> str | None:
        return self._get("c")

    def media_address(self, m: Media) -> str | None:
        """The connection address that applies to ``m`` (media level wins)."""
        c = m.connection or self.connection
        if not c:
            return None
        parts = c.split()
        return parts[2].split("/")[0] if len(parts) >= 3 else None

    def set_connection(self, host: str) -> None:
        c = f"IN {'IP6' if ':' in host else 'IP4'} {host}"
        if self.connection is not None:
            self.head = [(t, c if t == "c" else v) for t, v in self.head]
        else:
            # c= goes after s=/i=/u=/e=/p= and before t= (RFC 4566 §5)
            idx = next((i for i, (t, _) in enumerate(self.head) if t in "bzkt"), len(self.head))
            self.head.insert(idx, ("c", c))
        for m in self.media:
            if m.connection is not None:
                m.connection = c
        # the origin's address names the session's creator: ours now
        o = self._get("o")
        if o:
            parts = o.split()
            if len(parts) == 6:
                parts[4] = "IP6" if ":" in host else "IP4"
                parts[5] = host
                self.head = [(t, " ".join(parts) if t == "o" else v) for t, v in self.head]

    def bump_version(self) -> None:
        o = self._get("o")
        if o:
            parts = o.split()
            if len(parts) == 6 and parts[2].isdigit():
                parts[2] = str(int(parts[2]) + 1)
                self.head = [(t, " ".join(parts) if t == "o" else v) for t, v in self.head]

    def serialize(self) -> bytes:
        lines = [f"{t}={v}" for t, v in self.head]
        for m in self.media:
            lines.append(f"m={m.kind} {m.port} {m.proto} {' '.join(m.formats)}".rstrip())
            if m.connection is not None:
                lines.append(f"c={m.connection}")
            lines.extend(f"{t}={v}" for t, v in m.lines)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    @property
    def on_hold(self) -> bool:
        """Whether the description puts the audio on hold (RFC 3264 §8.4)."""
        c = self.connection or ""
        return any(m.direction in ("sendonly", "inactive") for m in self.media) or \
            c.endswith(" 0.0.0.0")
