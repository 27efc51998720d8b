"""SIP messages (RFC 3261 §7): requests, responses and their headers.

Messages are mutable while a component builds them; once handed to a transaction
they are treated as read-only. Header values are kept as the raw strings that came
off the wire: the few headers every message needs (Via, CSeq, From/To tags) have
cheap accessors here, everything else is parsed on demand by ``tongdai.sip.uri``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tongdai.sip.errors import RemoteProtocolError

# RFC 3261 §7.3.3 and later RFCs: compact header forms.
COMPACT: dict[str, str] = {
    "v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
    "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
    "e": "content-encoding", "o": "event", "r": "refer-to", "u": "allow-events",
    "x": "session-expires", "b": "referred-by", "a": "accept-contact",
    "j": "reject-contact", "d": "request-disposition", "y": "identity", "n": "identity-info",
}

# How we spell header names on the wire.
_CANONICAL: dict[str, str] = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq", "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match", "p-asserted-identity": "P-Asserted-Identity",
}

# Headers whose values may legitimately contain commas that do not separate values
# (RFC 3261 §7.3.1 exceptions), so they are never split.
_NO_SPLIT = frozenset({
    "www-authenticate", "authorization", "proxy-authenticate", "proxy-authorization",
    "date", "subject", "user-agent", "server", "organization", "call-id", "cseq",
    "content-length", "content-type", "from", "to", "max-forwards", "expires",
    "retry-after", "timestamp", "authentication-info", "min-expires", "reason",
})


def header_key(name: str) -> str:
    """The lower-case long form of a header name."""
    key = name.strip().lower()
    return COMPACT.get(key, key)


def canonical_name(key: str) -> str:
    name = _CANONICAL.get(key)
    if name is None:
        name = "-".join(p[:1].upper() + p[1:] for p in key.split("-"))
        _CANONICAL[key] = name
    return name


def split_commas(value: str) -> list[str]:
    """Split a multi-value header at commas outside quotes and angle brackets."""
    if "," not in value:
        v = value.strip()
        return [v] if v else []
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


class Headers:
    """An ordered multimap of headers keyed by lower-case long names."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []

    @classmethod
    def of(cls, *pairs: tuple[str, str | int]) -> Headers:
        return cls([(header_key(k), str(v)) for k, v in pairs])

    def get(self, name: str, default: str | None = None) -> str | None:
        key = header_key(name)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """The value of every header line called ``name``, unsplit."""
        key = header_key(name)
        return [v for k, v in self._items if k == key]

    def values(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated lists split (RFC 3261 §7.3.1)."""
        key = header_key(name)
        out: list[str] = []
        for k, v in self._items:
            if k == key:
                if key in _NO_SPLIT:
                    out.append(v.strip())
                else:
                    out.extend(split_commas(v))
        return out

    def add(self, name: str, value: str | int) -> None:
        self._items.append((header_key(name), str(value)))

    def prepend(self, name: str, value: str | int) -> None:
        self._items.insert(0, (header_key(name), str(value)))

    def set(self, name: str, value: str | int) -> None:
        """Replace every ``name`` header by one line, in the position of the first."""
        key = header_key(name)
        sval = str(value)
        for i, (k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, sval)
                self._items[i + 1:] = [kv for kv in self._items[i + 1:] if kv[0] != key]
                return
        self._items.append((key, sval))

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._items = [kv for kv in self._items if kv[0] != key]

    def pop_first(self, name: str) -> str | None:
        """Remove the first value of ``name`` (splitting a comma list if needed)."""
        key = header_key(name)
        for i, (k, v) in enumerate(self._items):
            if k == key:
                parts = split_commas(v) if key not in _NO_SPLIT else [v]
                if len(parts) > 1:
                    self._items[i] = (k, ", ".join(parts[1:]))
                else:
                    del self._items[i]
                return parts[0] if parts else v
        return None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        return any(k == key for k, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def param(value: str, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value, outside any <...> URI.

    Returns "" for a flag parameter (``;rport``) and None when absent.
    """
    gt = value.rfind(">")
    tail = value[gt + 1:] if gt >= 0 else value
    lname = name.lower()
    for part in tail.split(";")[1:]:
        k, sep, v = part.partition("=")
        if k.strip().lower() == lname:
            return v.strip().strip('"') if sep else ""
    return None


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42)."""

    transport: str  # upper case: UDP, TCP, TLS, WS
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")

    @classmethod
    def parse(cls, value: str) -> Via:
        # "SIP/2.0/UDP host:port;branch=z9hG4bK..;rport"
        head, _, rest = value.partition(";")
        proto, _, sent_by = head.strip().partition(" ")
        parts = proto.split("/")
        if len(parts) != 3 or parts[0].strip().upper() != "SIP":
            raise RemoteProtocolError(400, "Bad Via")
        sent_by = sent_by.strip()
        if not sent_by:
            raise RemoteProtocolError(400, "Bad Via")
        host, port = split_hostport(sent_by)
        params: dict[str, str] = {}
        if rest:
            for p in rest.split(";"):
                k, _, v = p.partition("=")
                k = k.strip().lower()
                if k:
                    params[k] = v.strip()
        return cls(parts[2].strip().upper(), host, port, params)

    def __str__(self) -> str:
        hp = format_hostport(self.host, self.port)
        ps = "".join(f";{k}={v}" if v != "" else f";{k}" for k, v in self.params.items())
        return f"SIP/2.0/{self.transport} {hp}{ps}"


def split_hostport(hp: str) -> tuple[str, int | None]:
    hp = hp.strip()
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0:
            raise RemoteProtocolError(400, "Bad host")
        host = hp[: end + 1]
        rest = hp[end + 1:]
        if rest.startswith(":"):
            return host, _port(rest[1:])
        return host, None
    host, sep, port = hp.rpartition(":")
    if not sep:
        return hp, None
    return host, _port(port)


def _port(s: str) -> int:
    s = s.strip()
    if not s.isdigit() or not (0 < int(s) < 65536):
        raise RemoteProtocolError(400, "Bad port")
    return int(s)


def format_hostport(host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


@dataclass(slots=True, kw_only=True)
class _Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # Cheap accessors for the headers every layer reads ----------------------

    @property
    def call_id(self) -> str:
        v = self.headers.get("call-id")
        if not v:
            raise RemoteProtocolError(400, "Missing Call-ID")
        return v.strip()

    @property
    def cseq(self) -> tuple[int, str]:
        v = self.headers.get("cseq")
        if not v:
            raise RemoteProtocolError(400, "Missing CSeq")
        num, _, method = v.strip().partition(" ")
        if not num.isdigit() or not method.strip() or int(num) >= 2**31:
            raise RemoteProtocolError(400, "Bad CSeq")
        return int(num), method.strip().upper()

    @property
    def top_via(self) -> Via:
        v = self.headers.get("via")
        if not v:
            raise RemoteProtocolError(400, "Missing Via")
        return Via.parse(v.split(",", 1)[0] if "," in v and '"' not in v else v)

    @property
    def from_tag(self) -> str:
        v = self.headers.get("from")
        if v is None:
            raise RemoteProtocolError(400, "Missing From")
        return param(v, "tag") or ""

    @property
    def to_tag(self) -> str:
        v = self.headers.get("to")
        if v is None:
            raise RemoteProtocolError(400, "Missing To")
        return param(v, "tag") or ""

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()


@dataclass(slots=True, kw_only=True)
class Request(_Message):
    method: str
    uri: str

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(slots=True, kw_only=True)
class Response(_Message):
    status: int
    reason: str = ""

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason or reason_phrase(self.status)}"


Message = Request | Response


def serialize(msg: Message) -> bytes:
    """Wire form of a message; Content-Length is always written from the body."""
    lines = [msg.start_line()]
    for k, v in msg.headers:
        if k != "content-length":
            lines.append(f"{canonical_name(k)}: {v}")
    lines.append(f"Content-Length: {len(msg.body)}")
    lines.append("")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8") + msg.body


REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")


# Headers a response copies from its request (RFC 3261 §8.2.6.2).
_COPIED = ("via", "from", "call-id", "cseq")


def make_response(
    req: Request, status: int, reason: str = "", *, to_tag: str | None = None,
    headers: list[tuple[str, str | int]] | None = None, body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``req`` with Via/From/To/Call-ID/CSeq copied per RFC 3261 §8.2.6.2.

    ``to_tag`` is added to To when the request's To has none (and status > 100).
    """
    items: list[tuple[str, str]] = []
    to_value: str | None = None
    for k, v in req.headers:
        if k in _COPIED:
            items.append((k, v))
        elif k == "to":
            to_value = v
            items.append((k, v))
    if to_tag and status > 100 and to_value is not None and param(to_value, "tag") is None:
        items = [(k, f"{v};tag={to_tag}" if k == "to" else v) for k, v in items]
    if status == 100 and "timestamp" in req.headers:
        items.append(("timestamp", req.headers.get("timestamp") or ""))
    h = Headers(items)
    for name, value in headers or ():
        h.add(name, value)
    if content_type:
        h.set("content-type", content_type)
    return Response(status=status, reason=reason or reason_phrase(status), headers=h, body=body)
