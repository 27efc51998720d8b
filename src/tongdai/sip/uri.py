"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966) and name-addr values (§20.10).

``SipUri.user`` and ``password`` hold the unescaped text (``%61lice`` is "alice"; ""
when absent); ``str()`` escapes what the grammar requires. Parameters and URI headers keep their
wire spelling so a URI prints back the way it came; ``same_uri`` compares two URIs
the way RFC 3261 §19.1.4 says, where case and escaping do not matter.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import split_commas

__all__ = [
    "STAR", "NameAddr", "Params", "SipUri", "UnsupportedScheme", "escape", "parse_name_addrs",
    "same_uri", "unescape",
]

Params = tuple[tuple[str, str | None], ...]

# RFC 3261 §25.1. Characters allowed unescaped, beyond alphanumerics and "-_.~"
# (which ``quote`` never escapes).
_USER_SAFE = "!*'()&=+$,;?/"  # mark / user-unreserved
_PASSWORD_SAFE = "!*'()&=+$,"
_TEL_SAFE = "+*()"  # RFC 3966 §3: visual separators and phone digits; "#" is escaped

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# "#" is not allowed unescaped in a user part but desk phones send "*98#"; accept it.
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%#]+")
_PASSWORD = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_TEL_NUMBER = re.compile(r"[0-9A-Fa-f*#+\-.()%]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9_.-]+")
_IPV6_REF = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_PARAMCHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+")  # paramchar
_HCHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*")  # hname / hvalue
_ESCAPE_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a "%" not followed by two hex digits
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)

# RFC 3261 §19.1.4: these uri-parameters must appear in both URIs or in neither
# (transport too: the section's examples hold sip:bob@biloxi.com and
# sip:bob@biloxi.com;transport=udp to be different).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


class UnsupportedScheme(RemoteProtocolError):
    """A Request-URI scheme we cannot serve: answer 416 (RFC 3261 §8.2.2.1)."""

    def __init__(self, scheme: str) -> None:
        super().__init__(416, f"URI scheme {scheme[:20]!r} is not supported")
        self.scheme = scheme


def _bad(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(400, what)


def unescape(s: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2) as UTF-8; 400 on a malformed escape."""
    if "%" not in s:
        return s
    if _ESCAPE_OK.search(s):
        raise _bad("Malformed %-escape in URI")
    try:
        return unquote(s, errors="strict")
    except UnicodeDecodeError:
        raise _bad("%-escapes in URI are not UTF-8") from None


def escape(s: str, safe: str = _USER_SAFE) -> str:
    """Escape ``s`` for the user part of a URI (or another part, given its ``safe`` set)."""
    return quote(s, safe=safe)


def _lenient_unescape(s: str) -> str:
    return unquote(s) if "%" in s else s


def _split_hostport(hp: str) -> tuple[str, int | None]:
    if hp.startswith("["):
        end = hp.find("]") + 1
        host, rest = hp[:end], hp[end:]
        if not end or _IPV6_REF.fullmatch(host) is None:
            raise _bad("Malformed IPv6 reference in URI")
    else:
        host, colon, port = hp.partition(":")
        rest = colon + port
        if _HOSTNAME.fullmatch(host) is None:
            raise _bad("Malformed host in URI")
    if not rest:
        return host, None
    port = rest[1:]
    if rest[0] != ":" or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise _bad("Malformed port in URI")
    return host, int(port)


def _uri_params(parts: list[str]) -> Params:
    out: list[tuple[str, str | None]] = []
    for p in parts:
        name, eq, value = p.partition("=")
        if _PARAMCHARS.fullmatch(name) is None or (eq and _PARAMCHARS.fullmatch(value) is None):
            raise _bad("Malformed URI parameter")
        out.append((name, value if eq else None))
    return tuple(out)


def _find(params: Params, name: str) -> str | None:
    lname = name.lower()
    for k, v in params:
        if k.lower() == lname:
            return "" if v is None else v
    return None


def _format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip:, sips: or tel: URI. For tel, ``user`` is the number and ``host`` is empty."""

    scheme: str  # lower case
    user: str = ""  # unescaped; "" when the URI has no user part
    password: str = ""
    host: str = ""  # as written; IPv6 in brackets
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, s: str) -> SipUri:
        """Parse a URI; ``UnsupportedScheme`` (416) for a scheme other than sip/sips/tel."""
        s = s.strip()
        scheme, colon, rest = s.partition(":")
        lscheme = scheme.lower()
        if lscheme == "tel":
            return cls._parse_tel(rest)
        if lscheme not in ("sip", "sips"):
            if colon and _SCHEME.fullmatch(scheme):
                raise UnsupportedScheme(scheme)
            raise _bad("Malformed URI")
        user = password = ""
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1:]
            u, _, pw = userinfo.partition(":")
            if _USER.fullmatch(u) is None or _PASSWORD.fullmatch(pw) is None:
                raise _bad("Malformed user part in URI")
            user = unescape(u)
            password = unescape(pw)
        rest, qmark, hpart = rest.partition("?")
        hostport, *pparts = rest.split(";")
        host, port = _split_hostport(hostport)
        headers: list[tuple[str, str]] = []
        if qmark:
            for h in hpart.split("&"):
                name, eq, value = h.partition("=")
                if not (eq and name and _HCHARS.fullmatch(name) and _HCHARS.fullmatch(value)):
                    raise _bad("Malformed URI header")
                headers.append((name, value))
        return cls(lscheme, user, password, host, port, _uri_params(pparts), tuple(headers))

    @classmethod
    def _parse_tel(cls, rest: str) -> SipUri:
        # RFC 3966 §3: telephone-subscriber = number *(";" par); no host, no headers.
        number, *pparts = rest.split(";")
        if _TEL_NUMBER.fullmatch(number) is None:
            raise _bad("Malformed tel URI")
        return cls("tel", unescape(number), params=_uri_params(pparts))

    def __str__(self) -> str:
        params = _format_params(self.params) if self.params else ""
        if self.scheme == "tel":
            return f"tel:{escape(self.user, _TEL_SAFE)}{params}"
        if self.scheme == "*":
            return "*"
        out = [self.scheme, ":"]
        if self.user:
            out.append(escape(self.user))
            if self.password:
                out += (":", escape(self.password, _PASSWORD_SAFE))
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(params)
        if self.headers:
            out += ("?", "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)

    def param(self, name: str) -> str | None:
        """A uri-parameter by case-insensitive name: "" for a flag, None when absent."""
        return _find(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with ``name`` set (replacing any existing one); ``None`` makes a flag."""
        kept = tuple(kv for kv in self.params if kv[0].lower() != name.lower())
        return replace(self, params=(*kept, (name, value)))

    def without_param(self, name: str) -> SipUri:
        lname = name.lower()
        return replace(self, params=tuple(kv for kv in self.params if kv[0].lower() != lname))

    @property
    def transport(self) -> str:
        """The ``transport`` parameter in lower case; "udp" when absent (RFC 3261 §19.1.1)."""
        return (self.param("transport") or "udp").lower()

    @property
    def aor(self) -> str:
        """The canonical address-of-record (RFC 3261 §10.3 step 5): no parameters or
        headers, escapes decoded, host in lower case."""
        return str(SipUri(self.scheme, self.user, "", self.host.lower(), self.port))


def _host_key(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        try:
            return ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            return host
    return host


def _param_map(params: Params) -> dict[str, str | None]:
    return {k.lower(): None if v is None else _lenient_unescape(v).lower() for k, v in params}


def same_uri(a: SipUri, b: SipUri) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (and RFC 3966 §4 for tel URIs)."""
    if a.scheme != b.scheme:
        return False
    pa, pb = _param_map(a.params), _param_map(b.params)
    if a.scheme == "tel":
        # RFC 3966 §4: visual separators do not count; parameters must all match.
        def digits(u: SipUri) -> str:
            return re.sub(r"[-.()]", "", u.user).lower()
        return digits(a) == digits(b) and pa == pb
    # User info is compared case-sensitively, everything else is not.
    if a.user != b.user or a.password != b.password:
        return False
    if a.port != b.port or _host_key(a.host) != _host_key(b.host):
        return False
    if any(pa[k] != pb[k] for k in pa.keys() & pb.keys()):
        return False
    if any((k in pa) != (k in pb) for k in _MUST_MATCH):
        return False
    # URI headers are never ignored: every one must be present in both and match.
    ha = {k.lower(): _lenient_unescape(v) for k, v in a.headers}
    hb = {k.lower(): _lenient_unescape(v) for k, v in b.headers}
    return ha == hb


def _split_params(s: str) -> list[str]:
    """Split ``;a=b;c="x;y"`` at semicolons outside quoted strings."""
    if '"' not in s:
        return s.split(";")
    out: list[str] = []
    quoted = False
    start = 0
    i = 0
    while i < len(s):
        ch = s[i]
        if quoted and ch == "\\":
            i += 1
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append(s[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise _bad("Unterminated quoted string in header parameters")
    out.append(s[start:])
    return out


def _header_params(s: str) -> Params:
    """Header parameters after a name-addr (RFC 3261 §20.10): ``;name[=value]``..."""
    s = s.strip(" \t")
    if not s:
        return ()
    if s[0] != ";":
        raise _bad("Unexpected text after URI")
    out: list[tuple[str, str | None]] = []
    for p in _split_params(s[1:]):
        name, eq, value = p.partition("=")
        name, value = name.strip(" \t"), value.strip(" \t")
        if _TOKEN.fullmatch(name) is None:
            raise _bad("Malformed header parameter")
        if eq:
            quoted = len(value) >= 2 and value[0] == '"' and value[-1] == '"'
            if not value or (not quoted and any(c in value for c in ' \t,;<>"')):
                raise _bad("Malformed header parameter value")
        out.append((name, value if eq else None))
    return tuple(out)


def _quoted_end(s: str) -> int:
    """Index of the quote closing the quoted-string that starts ``s``."""
    i = 1
    while True:
        j = s.find('"', i)
        if j < 0:
            raise _bad("Unterminated display name")
        backslashes = len(s[i:j]) - len(s[i:j].rstrip("\\"))
        if backslashes % 2 == 0:
            return j
        i = j + 1


def _uri_in_header(s: str) -> SipUri:
    try:
        return SipUri.parse(s)
    except UnsupportedScheme as exc:
        # 416 is about Request-URIs only (RFC 3261 §21.4.13); in a header it is a 400.
        raise _bad(exc.reason) from None


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: ``"Display" <uri>;params`` (RFC 3261 §20.10)."""

    display: str  # unquoted; "" when absent
    uri: SipUri
    params: Params = ()  # header parameters (tag, expires, q, +sip.instance, ...)

    @classmethod
    def parse(cls, s: str) -> NameAddr:
        s = s.strip(" \t")
        display = ""
        if s.startswith('"'):
            end = _quoted_end(s)
            display = _QUOTED_PAIR.sub(r"\1", s[1:end])
            s = s[end + 1:].lstrip(" \t")
            if not s.startswith("<"):
                raise _bad("Display name without <URI>")
        lt = s.find("<")
        if lt >= 0:
            gt = s.find(">", lt)
            if gt < 0:
                raise _bad("Unterminated <URI>")
            if lt:
                display = s[:lt].strip(" \t")
            return cls(display, _uri_in_header(s[lt + 1:gt]), _header_params(s[gt + 1:]))
        # addr-spec: any ";" after the host starts the header parameters (§20.10).
        quote_at = s.find('"')
        at = s.find("@", 0, quote_at if quote_at >= 0 else len(s))
        semi = s.find(";", at + 1 if at >= 0 else 0)
        if semi < 0:
            semi = len(s)
        return cls("", _uri_in_header(s[:semi]), _header_params(s[semi:]))

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        params = _format_params(self.params) if self.params else ""
        if self.display:
            name = self.display.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{name}" <{self.uri}>{params}'
        return f"<{self.uri}>{params}"

    def param(self, name: str) -> str | None:
        """A header parameter, unquoted: "" for a flag, None when absent."""
        v = _find(self.params, name)
        if v is not None and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            return _QUOTED_PAIR.sub(r"\1", v[1:-1])
        return v

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        """A copy with header parameter ``name`` set (replacing any); None makes a flag."""
        kept = tuple(kv for kv in self.params if kv[0].lower() != name.lower())
        return replace(self, params=(*kept, (name, value)))

    @property
    def tag(self) -> str:
        """The ``tag`` parameter (RFC 3261 §19.3), "" when absent."""
        return self.param("tag") or ""

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)

    @property
    def is_star(self) -> bool:
        """True for the ``Contact: *`` wildcard of a REGISTER (RFC 3261 §10.2.2)."""
        return self.uri.scheme == "*"


# The wildcard Contact: parse_name_addrs("*") == [STAR].
STAR = NameAddr("", SipUri("*"))


def parse_name_addrs(value: str) -> list[NameAddr]:
    """Every name-addr in a comma-separated Contact/Route/Record-Route value.

    ``Contact: *`` gives ``[STAR]``; a "*" among other addresses is a 400
    (RFC 3261 §10.3 step 6).
    """
    parts = split_commas(value)
    if "*" in parts:
        if len(parts) > 1:
            raise _bad("Contact * must be the only contact")
        return [STAR]
    return [NameAddr.parse(part) for part in parts]
