"""Parsing SIP messages off the wire (RFC 3261 §7) and framing them on streams (§18.3).

Only the start line and the header name/value pairs are parsed eagerly; values stay
strings and URIs, Vias and the like are parsed by whoever asks for them. The common
path uses C-level ``bytes``/``str`` operations (``find``, ``split``, ``partition``)
and no per-character Python loop; ``bench/parse_bench.py`` measures it.

Errors are ``RemoteProtocolError``: ``status`` is the response to send (400, 505,
513) with the partially parsed request attached as ``exc.request``, or ``None`` when
the message must be dropped (not SIP at all, a bad response, or a request missing
the headers needed to answer it).
"""

from __future__ import annotations

import re

from tongdai.sip.errors import LocalProtocolError, RemoteProtocolError
from tongdai.sip.message import COMPACT, Headers, Message, Request, Response

__all__ = ["FramingError", "StreamFramer", "parse_message"]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)

# Raw header name (as spelled on the wire) -> lower-case long key. Bounded so a peer
# inventing header names cannot grow it without limit.
_KEYS: dict[str, str] = {}
_MAX_KEYS = 1024

# RFC 3261 §8.2.6.2: a response copies these from the request; without them the
# request cannot be answered at all (and a response without them matches nothing).
_ESSENTIAL = ("via", "from", "to", "call-id", "cseq")
_TRACKED = frozenset({*_ESSENTIAL, "max-forwards", "content-length"})
# Headers that may appear once only (RFC 3261 §7.3.1, table 2 of §20).
_SINGLE = _TRACKED - {"via"}


def _key(name: str) -> str | None:
    """The header key for a raw name, or None when it is not a token."""
    key = _KEYS.get(name)
    if key is not None:
        return key
    # RFC 3261 §7.3.1: HCOLON allows whitespace between the name and the colon.
    stripped = name.rstrip(" \t")
    if _TOKEN.fullmatch(stripped) is None:
        return None
    lower = stripped.lower()
    key = COMPACT.get(lower, lower)
    if len(_KEYS) < _MAX_KEYS:
        _KEYS[name] = key
    return key


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Header section and body, split at the first empty line (CRLF or bare LF)."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        lf = data.find(b"\n\n", 0, end)
        if lf < 0:
            return data[:end], data[end + 4:]
        return data[:lf], data[lf + 2:]
    lf = data.find(b"\n\n")
    if lf >= 0:
        return data[:lf], data[lf + 2:]
    # No empty line: tolerate a header section that simply ends with the datagram.
    return data, b""


def _lines(head: bytes) -> tuple[list[str], str | None]:
    """Decoded header lines and the first fault found while decoding them."""
    fault = None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 3261 §7.3.1: header values are UTF-8. Decode anyway so the request
        # can still be answered with a 400.
        text = head.decode("utf-8", "replace")
        fault = "Header section is not valid UTF-8"
    lines = text.split("\r\n")
    n = len(lines) - 1
    if text.count("\n") != n or text.count("\r") != n:
        # Slow path: bare LF line ends (tolerated) or a stray CR (refused).
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
        if fault is None and any("\r" in ln for ln in lines):
            fault = "Bare CR in header section"
    return lines, fault


def _headers(lines: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    """Header (key, value) pairs from the lines after the start line."""
    items: list[tuple[str, str]] = []
    fault = None
    for number, line in enumerate(lines):
        if not number:
            continue  # the start line
        if not line:
            continue
        c = line[0]
        if c == " " or c == "\t":
            # RFC 3261 §7.3.1: a continuation line is folded into the previous value,
            # the line break and leading whitespace becoming one SP.
            if not items:
                fault = fault or "Continuation line before the first header"
                continue
            more = line.strip(" \t")
            if more:
                k, v = items[-1]
                items[-1] = (k, f"{v} {more}" if v else more)
            continue
        name, sep, value = line.partition(":")
        key = _KEYS.get(name) or _key(name)
        if not sep or key is None:
            # The line itself is not quoted: it may hold credentials.
            fault = fault or f"Malformed header on line {number + 1}"
            continue
        items.append((key, value.strip(" \t")))
    return items, fault


def _index(items: list[tuple[str, str]]) -> tuple[dict[str, str], str | None]:
    """The first value of each tracked header, and a fault for conflicting repeats."""
    found: dict[str, str] = {}
    fault = None
    for k, v in items:
        if k in _TRACKED:
            old = found.get(k)
            if old is None:
                found[k] = v
            elif k in _SINGLE and old != v and fault is None:
                fault = f"More than one {k} header"
    return found, fault


def _content_length(value: str | None, body: bytes) -> tuple[bytes, str | None]:
    """The body cut to Content-Length (RFC 3261 §18.3), or a fault."""
    if value is None:
        # RFC 3261 §18.3: on a datagram a missing Content-Length means the body
        # runs to the end of the packet.
        return body, None
    if not (value.isascii() and value.isdigit()):
        return body, "Malformed Content-Length"
    n = int(value)
    if n > len(body):
        return body, "Body shorter than Content-Length"
    return (body[:n] if n < len(body) else body), None


def parse_message(data: bytes, *, max_size: int = 65535) -> Message:
    """Parse one SIP message: a UDP datagram or one message framed by ``StreamFramer``.

    Raises ``RemoteProtocolError``; see the module docstring for its ``status``.
    """
    # RFC 3261 §7.5: CRLFs before the start line are ignored (keep-alives, padding).
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
        if not data:
            raise RemoteProtocolError(None, "Empty message")
    msg = _parse_common(data, max_size)
    if msg is None:
        msg = _parse_general(data, max_size)
    return msg


_ESSENTIAL_SET = frozenset(_ESSENTIAL)
_FAST_METHODS = frozenset({
    "REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "PRACK",
    "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
})


def _parse_common(data: bytes, max_size: int) -> Message | None:
    """The fast path: a well-formed CRLF message without folding or repeated headers.

    Returns None for anything unusual, which ``_parse_general`` then handles (and
    explains). Both paths give the same result for every message this one accepts.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0 or len(data) > max_size:
        return None
    head = data[:end]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\r\n")
    n = len(lines) - 1
    # A bare LF (an earlier LF-only empty line, say) or bare CR: the general path.
    if head.count(b"\n") != n or head.count(b"\r") != n:
        return None
    it = iter(lines)
    start = next(it)
    keys = _KEYS
    try:
        # A continuation line or a bad name misses the cache: KeyError.
        items = [
            (keys[k], v.strip(" \t")) for ln in it for k, sep, v in [ln.partition(":")] if sep
        ]
    except KeyError:
        return None
    found = dict(items)
    if len(found) != n:
        return None  # a line without a colon, or a repeated header
    if not found.keys() >= _ESSENTIAL_SET or "" in found.values():
        return None
    body = data[end + 4:]
    cl = found.get("content-length")
    if cl is not None:
        if not (cl.isascii() and cl.isdigit()) or int(cl) > len(body):
            return None
        if int(cl) < len(body):
            body = body[:int(cl)]
    if start.startswith("SIP/2.0 "):
        code = start[8:11]
        if not (code.isascii() and code.isdigit() and "1" <= code[0] <= "6"):
            return None
        if start[11:12] not in " ":
            return None
        return Response(status=int(code), reason=start[12:], headers=Headers(items), body=body)
    parts = start.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or parts[0] not in _FAST_METHODS:
        return None
    method, uri = parts[0], parts[1]
    num, _, cseq_method = found["cseq"].partition(" ")
    if (
        cseq_method != method or ":" not in uri or not (num.isascii() and num.isdigit())
        or len(num) > 10 or int(num) >= 2**31
    ):
        return None
    mf = found.get("max-forwards")
    if mf is not None and not (mf.isascii() and mf.isdigit() and len(mf) <= 3):
        return None
    return Request(method=method, uri=uri, headers=Headers(items), body=body)


def _parse_general(data: bytes, max_size: int) -> Message:
    """Every message, however unusual; raises the error that explains a fault."""
    head, body = _split_head(data)
    lines, fault = _lines(head)
    start = lines[0]
    if start[:4].upper() == "SIP/":
        return _response(start, lines, body, fault, len(data) > max_size)
    return _request(start, lines, body, fault, len(data) > max_size)


def _response(
    start: str, lines: list[str], body: bytes, fault: str | None, too_large: bool,
) -> Response:
    # RFC 3261 §7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase.
    # Responses are never answered, so every fault here means "drop".
    parts = start.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    if (
        parts[0].upper() != "SIP/2.0" or len(code) != 3 or not code.isascii()
        or not code.isdigit() or not 100 <= int(code) <= 699
    ):
        raise RemoteProtocolError(None, "Malformed status line")
    items, hfault = _headers(lines)
    found, dfault = _index(items)
    body, cfault = _content_length(found.get("content-length"), body)
    fault = fault or hfault or dfault or cfault
    if fault is None and too_large:
        fault = "Message too large"
    if fault is None and not all(found.get(k) for k in _ESSENTIAL):
        fault = "Response lacks Via, From, To, Call-ID or CSeq"
    if fault is not None:
        raise RemoteProtocolError(None, fault)
    reason = parts[2] if len(parts) > 2 else ""
    return Response(status=int(code), reason=reason, headers=Headers(items), body=body)


def _request(
    start: str, lines: list[str], body: bytes, fault: str | None, too_large: bool,
) -> Request:
    # RFC 3261 §7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF.
    parts = start.split(" ")
    version = parts[-1]
    if len(parts) < 3 or version[:4].upper() != "SIP/" or _TOKEN.fullmatch(parts[0]) is None:
        raise RemoteProtocolError(None, "Not a SIP message")
    method = parts[0]
    uri = parts[1] if len(parts) == 3 else " ".join(parts[1:-1])
    items, hfault = _headers(lines)
    found, dfault = _index(items)
    body, cfault = _content_length(found.get("content-length"), body)
    req = Request(method=method, uri=uri, headers=Headers(items), body=body)

    status = 400
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        # RFC 3261 §8.2: a version we do not speak gets 505, anything else is garbage.
        status = 505 if _VERSION.fullmatch(version) else 400
        fault = f"SIP version {version[:20]!r} is not supported"
    elif too_large:
        status, fault = 513, "Message too large"
    else:
        fault = fault or hfault or dfault or cfault
        if fault is None:
            fault = _check_request(method, uri, len(parts), found)
    if fault is None:
        return req
    if not all(found.get(k) for k in _ESSENTIAL):
        raise RemoteProtocolError(None, fault)
    raise RemoteProtocolError(status, fault, request=req)


def _check_request(method: str, uri: str, nparts: int, found: dict[str, str]) -> str | None:
    """What is wrong with a request whose lines all parsed, or None."""
    if nparts != 3 or ":" not in uri:
        return "Malformed Request-URI"
    for k in _ESSENTIAL:
        if not found.get(k):
            return f"Missing {k} header"
    # RFC 3261 §8.1.1.5: CSeq = 1*DIGIT LWS Method, the number below 2**31, and the
    # method matching the Request-Line's.
    cseq = found["cseq"].split()
    if (
        len(cseq) != 2 or not cseq[0].isascii() or not cseq[0].isdigit()
        or len(cseq[0]) > 10 or int(cseq[0]) >= 2**31
    ):
        return "Malformed CSeq"
    if cseq[1] != method:
        return "CSeq method does not match the request method"
    mf = found.get("max-forwards")
    if mf is not None and not (mf.isascii() and mf.isdigit() and len(mf) <= 3):
        return "Malformed Max-Forwards"
    return None


def _partial_request(head: bytes) -> Request | None:
    """The request in a header section, when it can be answered; else None."""
    try:
        msg = parse_message(head + b"\r\n\r\n", max_size=len(head) + 4)
    except RemoteProtocolError as exc:
        return exc.request
    return msg if isinstance(msg, Request) else None


class FramingError(RemoteProtocolError):
    """A stream can no longer be framed; answer ``request`` if set, then close.

    ``messages`` are the complete messages framed before the fault in the same
    ``feed`` call: handle them before closing the connection.
    """

    def __init__(
        self, status: int | None, reason: str, *, request: Request | None = None,
        messages: list[bytes] | None = None,
    ) -> None:
        super().__init__(status if request is not None else None, reason, request=request)
        self.messages = messages or []


# Content-Length (or its compact form "l") at the start of a header line. Spelled
# without re.IGNORECASE so the leading LF is a literal prefix the engine can skip to.
_CL_LINE = re.compile(
    rb"\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:([^\r\n]*)"
)
_PING = b"\r\n\r\n"
_CR_LF = (13, 10)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3).

    ``feed`` returns complete messages (header section and body) as bytes, for
    ``parse_message``. Double-CRLF keep-alive pings between messages (RFC 5626
    §3.5.1) are counted: read them with ``take_pings`` and answer each with one
    CRLF. On a fault ``feed`` raises ``FramingError`` and the connection must be
    closed: a stream cannot be re-synchronised once framing is lost.
    """

    __slots__ = ("_broken", "_buf", "_need", "_pings", "_scan", "max_size")

    def __init__(self, *, max_size: int = 65535) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._scan = 0  # how far the buffer was searched for the end of headers
        self._need: int | None = None  # total length of the message being read
        self._pings = 0
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buf)

    def take_pings(self) -> int:
        """How many keep-alive pings arrived since the last call."""
        n, self._pings = self._pings, 0
        return n

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message they complete, in order."""
        if self._broken:
            raise LocalProtocolError("The stream failed framing earlier; close the connection")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        try:
            while True:
                if self._need is None:
                    if buf and buf[0] in _CR_LF:
                        if self._skip_keepalive(buf):
                            continue
                        break
                    if not buf or not self._find_head(buf):
                        break
                need = self._need
                assert need is not None
                if len(buf) < need:
                    break
                out.append(bytes(buf[:need]))
                del buf[:need]
                self._need = None
                self._scan = 0
        except FramingError as exc:
            self._broken = True
            exc.messages = out
            raise
        return out

    def _skip_keepalive(self, buf: bytearray) -> bool:
        """Consume CRLFs before a message; False when more bytes are needed."""
        if buf.startswith(_PING):
            self._pings += 1
            del buf[:4]
        elif len(buf) < 4 and _PING.startswith(buf):
            return False  # could still become a ping
        elif buf.startswith(b"\r\n"):
            del buf[:2]  # a lone CRLF: a pong, or padding (RFC 3261 §7.5)
        else:
            del buf[:1]
        self._scan = 0
        return True

    def _find_head(self, buf: bytearray) -> bool:
        """Locate the end of the header section and set ``_need``; False if not yet."""
        start = max(0, self._scan - 3)
        crlf = buf.find(b"\r\n\r\n", start)
        lf = buf.find(b"\n\n", start, crlf if crlf >= 0 else len(buf))
        if crlf < 0 and lf < 0:
            if len(buf) > self.max_size:
                cut = buf.rfind(b"\n")
                head = bytes(buf[:cut]) if cut > 0 else b""
                raise FramingError(513, "Message too large", request=_partial_request(head))
            self._scan = len(buf)
            return False
        head_end, body_start = (lf, lf + 2) if lf >= 0 else (crlf, crlf + 4)
        head = bytes(buf[:head_end])
        values = {v.strip(b" \t") for v in _CL_LINE.findall(head)}
        if not values:
            raise FramingError(
                400, "Content-Length is mandatory on streams", request=_partial_request(head),
            )
        value = values.pop()
        if values or not value.isdigit():
            raise FramingError(400, "Malformed Content-Length", request=_partial_request(head))
        total = body_start + int(value)
        if total > self.max_size:
            raise FramingError(513, "Message too large", request=_partial_request(head))
        self._need = total
        return True
