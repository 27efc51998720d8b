"""SIP URIs and name-addr values (RFC 3261 §19.1, §20.10, §25.1)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import format_hostport, split_commas, split_hostport

Params = tuple[tuple[str, str | None], ...]

# RFC 3261 §25.1 "unreserved" / "user-unreserved": left unescaped in the user part.
_USER_SAFE = "-_.!~*'()&=+$,;?/"


class UnsupportedScheme(RemoteProtocolError):
    """A Request-URI scheme we cannot serve (answer 416, RFC 3261 §8.2.2.1)."""

    def __init__(self, scheme: str) -> None:
        super().__init__(416, "Unsupported URI Scheme")
        self.scheme = scheme


def unescape(s: str) -> str:
    return unquote(s) if "%" in s else s


def escape(s: str) -> str:
    return quote(s, safe=_USER_SAFE)


def _parse_params(s: str) -> Params:
    out: list[tuple[str, str | None]] = []
    for part in s.split(";"):
        if not part:
            continue
        k, sep, v = part.partition("=")
        out.append((k.strip(), v.strip() if sep else None))
    return tuple(out)


def _format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str  # "sip" | "sips" | "tel"
    user: str  # unescaped
    password: str
    host: str
    port: int | None
    params: Params = ()
    headers: str = ""  # the raw "?h=v&..." part, without "?"

    @classmethod
    def parse(cls, s: str) -> SipUri:
        s = s.strip()
        scheme, sep, rest = s.partition(":")
        scheme = scheme.lower()
        if not sep or not rest:
            raise RemoteProtocolError(400, "Bad URI")
        if scheme == "tel":
            number, _, p = rest.partition(";")
            return cls("tel", unescape(number), "", "", None, _parse_params(p))
        if scheme not in ("sip", "sips"):
            raise UnsupportedScheme(scheme)
        rest, _, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            hostpart = rest
            userinfo = ""
        hostport, _, p = hostpart.partition(";")
        user, _, password = userinfo.partition(":")
        if not hostport:
            raise RemoteProtocolError(400, "Bad URI host")
        host, port = split_hostport(hostport)
        if not host or any(c in host for c in " <>\"") :
            raise RemoteProtocolError(400, "Bad URI host")
        return cls(scheme, unescape(user), password, host, port, _parse_params(p), headers)

    def param(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.params:
            if k.lower() == lname:
                return v if v is not None else ""
        return None

    @property
    def transport(self) -> str:
        return (self.param("transport") or "udp").lower()

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{_format_params(self.params)}"
        userinfo = ""
        if self.user:
            userinfo = escape(self.user)
            if self.password:
                userinfo += ":" + self.password
            userinfo += "@"
        hdrs = f"?{self.headers}" if self.headers else ""
        hp = format_hostport(self.host, self.port)
        return f"{self.scheme}:{userinfo}{hp}{_format_params(self.params)}{hdrs}"


def same_uri(a: SipUri, b: SipUri) -> bool:
    """RFC 3261 §19.1.4 comparison (user case-sensitive, host and params not)."""
    if (a.scheme, a.user, a.password, a.port) != (b.scheme, b.user, b.password, b.port):
        return False
    if a.host.lower() != b.host.lower():
        return False
    pa = {k.lower(): (v or "").lower() for k, v in a.params}
    pb = {k.lower(): (v or "").lower() for k, v in b.params}
    for key in ("user", "ttl", "method", "maddr", "transport"):
        if pa.get(key) != pb.get(key):
            return False
    return all(pb[k] == v for k, v in pa.items() if k in pb)


@dataclass(frozen=True, slots=True)
class NameAddr:
    display: str
    uri: SipUri
    params: Params = ()

    @classmethod
    def parse(cls, s: str) -> NameAddr:
        s = s.strip()
        if not s:
            raise RemoteProtocolError(400, "Empty address")
        lt = s.find("<")
        if lt >= 0:
            gt = s.find(">", lt)
            if gt < 0:
                raise RemoteProtocolError(400, "Unterminated <")
            display = s[:lt].strip()
            if display.startswith('"'):
                end = display.rfind('"')
                display = display[1:end if end > 0 else None].replace('\\"', '"')
            uri = SipUri.parse(s[lt + 1:gt])
            return cls(display, uri, _parse_params(s[gt + 1:]))
        # addr-spec: parameters after it belong to the header (§20.10)
        uri_part, _, p = s.partition(";")
        return cls("", SipUri.parse(uri_part), _parse_params(p))

    @property
    def tag(self) -> str:
        for k, v in self.params:
            if k.lower() == "tag":
                return v or ""
        return ""

    def with_tag(self, tag: str) -> NameAddr:
        params = tuple((k, v) for k, v in self.params if k.lower() != "tag")
        return replace(self, params=(*params, ("tag", tag)))

    def __str__(self) -> str:
        disp = ""
        if self.display:
            d = self.display.replace("\\", "\\\\").replace('"', '\\"')
            disp = f'"{d}" '
        return f"{disp}<{self.uri}>{_format_params(self.params)}"


def parse_name_addrs(value: str) -> list[NameAddr]:
    """Every address of a comma-separated Contact/Route/Record-Route value."""
    out: list[NameAddr] = []
    for part in split_commas(value):
        if part == "*":
            continue
        out.append(NameAddr.parse(part))
    return out
