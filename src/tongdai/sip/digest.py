"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Server side: stateless nonces (a timestamp, randomness and an HMAC over both, so any
process holding the secret can check them), ``stale=true`` once a nonce is older than
its lifetime, and a bounded memory of nonce counts so an old ``nc`` is refused. An
answer without ``qop`` (RFC 2069 style) has no count to protect it, so its nonce is
single use: spent nonces are remembered until they would be stale anyway, and a
replay — or a client reusing one — gets a fresh challenge (``stale=true``). Both
memories are per process: several processes sharing the nonce secret each refuse
replays of what they saw themselves.
Client side: answering a carrier's 401/407 with a trunk's credentials.

Randomness is passed in (``entropy``) so the module stays free of I/O and clocks.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from tongdai.sip.message import Request, Response, make_response

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def h(algorithm: str, data: str) -> str:
    return ALGORITHMS[algorithm](data.encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a registrar stores instead of the password."""
    return h(algorithm, f"{username}:{realm}:{password}")


# One auth-param: a token name, "=", then a quoted string (with \\-escapes) or a token.
_PARAM = re.compile(r'\s*,?\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into ("digest", {a: b, c: d}); keys lower-cased."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(rest):
        quoted = m.group(2)
        if quoted is not None:
            params[m.group(1).lower()] = (
                quoted.replace("\\\\", "\x00").replace("\\", "").replace("\x00", "\\")
                if "\\" in quoted else quoted
            )
        else:
            params[m.group(1).lower()] = m.group(3)
    return scheme.lower(), params


def _quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def response_digest(
    algorithm: str, ha1_hex: str, nonce: str, method: str, uri: str,
    qop: str | None, nc: str, cnonce: str,
) -> str:
    """RFC 7616 §3.4.1 ``response`` for qop=auth (or RFC 2069 without qop)."""
    ha2 = h(algorithm, f"{method}:{uri}")
    if qop:
        return h(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(algorithm, f"{ha1_hex}:{nonce}:{ha2}")


class Verdict(Enum):
    OK = "ok"
    STALE = "stale"  # right credentials, expired or spent nonce: challenge again, stale=true
    FAILED = "failed"  # wrong password, unknown user, forged nonce, replayed nc
    MALFORMED = "malformed"  # not a Digest header we can read: answer 400


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an Authorization header claims, before verification."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str | None
    nc: str
    cnonce: str
    opaque: str

    @classmethod
    def parse(cls, value: str) -> Credentials | None:
        scheme, p = parse_params(value)
        if scheme != "digest":
            return None
        try:
            alg = p.get("algorithm", "MD5").upper()
            if alg not in ALGORITHMS:
                return None
            qop = p.get("qop") or None
            if qop is not None and qop.lower() != "auth":
                return None
            return cls(
                username=p["username"], realm=p["realm"], nonce=p["nonce"], uri=p["uri"],
                response=p["response"].lower(), algorithm=alg, qop=qop,
                nc=p.get("nc", ""), cnonce=p.get("cnonce", ""), opaque=p.get("opaque", ""),
            )
        except KeyError:
            return None


class NonceMac:
    """HMAC-SHA256 (RFC 2104) under one key, truncated to 16 bytes.

    The padded key's two hash states are computed once and copied per message: half
    the cost of ``hmac.digest``, which rebuilds them for each of the two MACs a
    challenged request costs (issuing its nonce, then checking it).
    """

    _BLOCK = 64  # SHA-256's block size

    def __init__(self, key: bytes) -> None:
        if len(key) > self._BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(self._BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __call__(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:16]


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class DigestServer:
    """Issues challenges and verifies answers for one realm."""

    _NONCE_LEN = 8 + 8 + 16

    def __init__(
        self, *, realm: str, secret: bytes, nonce_lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ("MD5", "SHA-256"), nc_memory: int = 100_000,
        spent_memory: int = 100_000,
    ) -> None:
        for a in algorithms:
            if a not in ALGORITHMS:
                raise ValueError(f"unknown digest algorithm {a}")
        self.realm = realm
        self.algorithms = algorithms
        self._mac = NonceMac(secret)
        self._lifetime = nonce_lifetime
        # nonce -> highest nc seen (RFC 7616 §3.4.5 replay protection), LRU-bounded.
        self._nc_seen: OrderedDict[str, int] = OrderedDict()
        self._nc_memory = nc_memory
        # Nonces answered without qop, and a heap of (stale at, nonce) to forget them
        # in that order. Forgetting one earlier would let its answer be replayed, so
        # when full we refuse new ones instead.
        self._spent: set[str] = set()
        self._spent_heap: list[tuple[float, str]] = []
        self._spent_memory = spent_memory

    def make_nonce(self, now: float, entropy: bytes) -> str:
        head = struct.pack(">d", now) + entropy[:8].ljust(8, b"\0")
        mac = self._mac(head)
        return base64.urlsafe_b64encode(head + mac).decode("ascii").rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != self._NONCE_LEN:
            return None
        head, mac = raw[:16], raw[16:]
        good = self._mac(head)
        if not hmac.compare_digest(mac, good):
            return None
        (ts,) = struct.unpack(">d", head[:8])
        return float(ts)

    def challenges(self, now: float, entropy: bytes, *, stale: bool = False) -> list[str]:
        """WWW-Authenticate / Proxy-Authenticate values, one per algorithm (RFC 8760 §2.4)."""
        nonce = self.make_nonce(now, entropy)
        tail = ", stale=true" if stale else ""
        return [
            f'Digest realm={_quote(self.realm)}, nonce="{nonce}", algorithm={alg}, '
            f'qop="auth"{tail}'
            for alg in self.algorithms
        ]

    def challenge_response(
        self, req: Request, now: float, entropy: bytes, *, to_tag: str,
        proxy: bool = False, stale: bool = False,
    ) -> Response:
        """401 (or 407 when ``proxy``: a B2BUA guarding INVITEs, RFC 3261 §22.3) with
        one challenge per algorithm."""
        resp = make_response(req, 407 if proxy else 401, to_tag=to_tag)
        header = "proxy-authenticate" if proxy else "www-authenticate"
        for value in self.challenges(now, entropy, stale=stale):
            resp.headers.add(header, value)
        return resp

    def verify(
        self, creds: Credentials, method: str, ha1_hex: str | None, now: float
    ) -> Verdict:
        """Check ``creds`` for ``method``; ``ha1_hex`` is None for an unknown user.

        An unknown user still costs a digest computation so timing does not reveal
        which usernames exist.
        """
        if creds.realm != self.realm:
            return Verdict.FAILED
        issued = self._nonce_time(creds.nonce)
        if issued is None or issued > now + 5:
            return Verdict.FAILED
        expected = response_digest(
            creds.algorithm, ha1_hex or "0" * 64, creds.nonce, method, creds.uri,
            creds.qop, creds.nc, creds.cnonce,
        )
        good = hmac.compare_digest(expected, creds.response) and ha1_hex is not None
        if not good:
            return Verdict.FAILED
        if now - issued > self._lifetime:
            return Verdict.STALE
        if creds.qop:
            try:
                nc = int(creds.nc, 16)
            except ValueError:
                return Verdict.FAILED
            last = self._nc_seen.get(creds.nonce)
            if last is not None and nc <= last:
                return Verdict.FAILED
            self._nc_seen[creds.nonce] = nc
            self._nc_seen.move_to_end(creds.nonce)
            if len(self._nc_seen) > self._nc_memory:
                self._nc_seen.popitem(last=False)
        elif not self._spend(creds.nonce, issued + self._lifetime, now):
            # RFC 2617 §3.2.1: stale=true lets an honest client that reused the nonce
            # answer again without asking its user; a replayer cannot answer at all.
            return Verdict.STALE
        return Verdict.OK

    def _spend(self, nonce: str, stale_at: float, now: float) -> bool:
        """Use up a nonce answered without qop; False if it was used already (or the
        memory is full of nonces that are still fresh)."""
        spent, heap = self._spent, self._spent_heap
        # Forget a nonce only a second after ``verify`` calls it stale (float rounding).
        while heap and heap[0][0] + 1.0 < now:
            spent.discard(heapq.heappop(heap)[1])
        if nonce in spent or len(spent) >= self._spent_memory:
            return False
        spent.add(nonce)
        heapq.heappush(heap, (stale_at, nonce))
        return True


def authorization(
    challenge: str, *, method: str, uri: str, username: str, password: str,
    nc: int = 1, cnonce: str,
) -> str | None:
    """The Authorization value answering a 401/407 ``challenge`` (client side).

    Returns None when the challenge is not a Digest one we can answer.
    """
    scheme, p = parse_params(challenge)
    if scheme != "digest" or "nonce" not in p:
        return None
    alg = p.get("algorithm", "MD5").upper()
    if alg not in ALGORITHMS:
        return None
    realm = p.get("realm", "")
    qops = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    if qops and qop is None:
        return None
    ncs = f"{nc:08x}"
    resp = response_digest(
        alg, ha1(alg, username, realm, password), p["nonce"], method, uri, qop, ncs, cnonce
    )
    parts = [
        f"username={_quote(username)}", f"realm={_quote(realm)}",
        f"nonce={_quote(p['nonce'])}", f"uri={_quote(uri)}", f'response="{resp}"',
        f"algorithm={alg}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f"cnonce={_quote(cnonce)}"]
    if "opaque" in p:
        parts.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(parts)


def pick_challenge(values: list[str]) -> str | None:
    """The strongest challenge we support among several (RFC 8760 §2.4)."""
    best: tuple[int, str] | None = None
    rank = {"SHA-256": 2, "MD5": 1}
    for v in values:
        scheme, p = parse_params(v)
        if scheme != "digest":
            continue
        r = rank.get(p.get("algorithm", "MD5").upper(), 0)
        if r and (best is None or r > best[0]):
            best = (r, v)
    return best[1] if best else None
