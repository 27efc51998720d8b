"""The one digest challenge/verify gate for REGISTER and INVITE (RFC 3261 §22, RFC 7616).

A registrar challenges with 401 and ``WWW-Authenticate`` and reads ``Authorization``
(§22.2); a proxy (the B2BUA taking a device's INVITE) with 407 and
``Proxy-Authenticate``/``Proxy-Authorization`` (§22.3). Everything else is the same
rule, kept here once:

- an address or (address, user) blocked by the brute-force throttle gets 403, also
  with the right password (``tongdai.throttle``), before any digest is checked; behind
  an edge proxy the address is the device's, from the Via the edge stamped, not the
  edge's (one phone with a wrong password must not lock out every device);
- no credentials: a challenge; credentials that do not parse: 400;
- a stale nonce (RFC 7616 §3.3 ``stale=true``): a fresh challenge, not a failure;
- a wrong answer and an unknown user get the same 403 and count as one failure, so
  the answers do not reveal which accounts exist.
"""

from __future__ import annotations

from collections.abc import Callable

from tongdai.pbx.directory import DeviceDirectory
from tongdai.sip import ids
from tongdai.sip.digest import Credentials, DigestServer, Verdict
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Request, Response, Via, make_response
from tongdai.sip.peer import Peer, bare_host
from tongdai.store.records import DeviceRec
from tongdai.throttle import AuthThrottle

Responder = Callable[[str, Response], None]

BLOCKED_REASON = "Forbidden (too many failures)"


class DigestGate:
    """Challenges and verifies the digest credentials of one method's requests.

    ``proxy`` selects 407/Proxy-Authorization (INVITE) over 401/Authorization
    (REGISTER). ``stats`` counts what the gate answered.
    """

    def __init__(
        self, *, digest: DigestServer, directory: DeviceDirectory, throttle: AuthThrottle,
        respond: Responder, proxy: bool, edges: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.digest = digest
        self.edges = edges  # (host, port) of edge proxies (TONGDAI_SIP_EDGE_PROXIES)
        self.directory = directory
        self.throttle = throttle
        self.respond = respond
        self.proxy = proxy
        self.header = "proxy-authorization" if proxy else "authorization"
        self.stats = {"challenged": 0, "failed": 0, "blocked": 0}

    def client_host(self, req: Request, peer: Peer) -> str:
        """The address the throttle counts: where the request came from or, when that is
        an edge proxy, the device's own address as the edge saw it (the second Via's
        ``received``, else its sent-by: RFC 3261 §18.2.1, RFC 3581 §4)."""
        if (peer.host, peer.port) not in self.edges:
            return peer.host
        vias = req.headers.values("via")
        if len(vias) < 2:
            return peer.host
        try:
            via = Via.parse(vias[1])
        except RemoteProtocolError:
            return peer.host
        return bare_host(via.params.get("received") or via.host)

    def blocked(self, req: Request, txn: str, host: str, user: str | None, now: float) -> bool:
        """Answer 403 and return True while ``host`` (with ``user``) is blocked."""
        if self.throttle.retry_after(host, user, now) <= 0:
            return False
        self.stats["blocked"] += 1
        self.respond(txn, make_response(req, 403, BLOCKED_REASON, to_tag=ids.new_tag()))
        return True

    def credentials(self, req: Request, txn: str, now: float) -> Credentials | None:
        """The request's credentials, or None once it has been challenged (none
        given) or refused with 400 (they do not parse)."""
        value = req.headers.get(self.header)
        if value is None:
            self.challenge(req, txn, now, stale=False)
            return None
        creds = Credentials.parse(value)
        if creds is None:
            self.respond(txn, make_response(req, 400, "Bad Authorization"))
        return creds

    def verify(
        self, req: Request, peer: Peer, txn: str, creds: Credentials, dev: DeviceRec | None,
        now: float, *, permitted: bool = True,
    ) -> DeviceRec | None:
        """The device once ``creds`` answer the challenge for ``dev``; otherwise None,
        the request answered. ``permitted=False`` fails even a right answer (a device
        registering somebody else's address of record)."""
        # Before the digest is checked: while blocked, the right password gets 403 too.
        host = self.client_host(req, peer)
        if self.blocked(req, txn, host, creds.username, now):
            return None
        ha1 = dev.ha1(creds.algorithm) if dev is not None else None
        verdict = self.digest.verify(creds, req.method, ha1, now)
        if verdict is Verdict.STALE:
            self.challenge(req, txn, now, stale=True)
            return None
        if verdict is not Verdict.OK or dev is None or not permitted:
            self.stats["failed"] += 1
            self.throttle.failure(host, creds.username, now)
            self.respond(txn, make_response(req, 403, "Forbidden", to_tag=ids.new_tag()))
            return None
        self.throttle.success(host, creds.username)
        return dev

    async def check(self, req: Request, peer: Peer, txn: str, now: float) -> DeviceRec | None:
        """The whole gate with a directory lookup: the authenticated device, or None
        once the request has been answered."""
        if self.blocked(req, txn, self.client_host(req, peer), None, now):
            return None
        creds = self.credentials(req, txn, now)
        if creds is None:
            return None
        dev = await self.directory.get(creds.username, now)
        return self.verify(req, peer, txn, creds, dev, now)

    def challenge(self, req: Request, txn: str, now: float, *, stale: bool) -> None:
        self.stats["challenged"] += 1
        self.respond(txn, self.digest.challenge_response(
            req, now, ids.nonce_entropy(), to_tag=ids.new_tag(), proxy=self.proxy,
            stale=stale))


class InviteAuth(DigestGate):
    """The gate for devices' INVITEs: 407 with ``Proxy-Authenticate`` (RFC 3261 §22.3)."""

    def __init__(
        self, *, digest: DigestServer, directory: DeviceDirectory, throttle: AuthThrottle,
        respond: Responder, edges: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        super().__init__(digest=digest, directory=directory, throttle=throttle,
                         respond=respond, proxy=True, edges=edges)
