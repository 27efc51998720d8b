"""Digest authentication of devices' INVITEs with 407 (RFC 3261 §22.3).

Failures count towards the same brute-force throttle as REGISTER failures: a scanner
guessing passwords through INVITEs is blocked like one guessing through REGISTERs.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.throttle import FailureThrottle
from tongdai.sip.digest import Credentials, DigestServer, Verdict
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.store.records import DeviceRec


class InviteAuth:
    def __init__(
        self, *, digest: DigestServer, directory: DeviceDirectory, throttle: FailureThrottle,
        respond: Callable[[str, Response], None],
    ) -> None:
        self.digest = digest
        self.directory = directory
        self.throttle = throttle
        self.respond = respond

    def _challenge(self, req: Request, txn: str, now: float, *, stale: bool) -> None:
        self.respond(txn, self.digest.challenge_response(
            req, now, os.urandom(8), to_tag=os.urandom(6).hex(), proxy=True, stale=stale))

    def _forbid(self, req: Request, txn: str) -> None:
        self.respond(txn, make_response(req, 403, to_tag=os.urandom(6).hex()))

    async def check(self, req: Request, peer: Peer, txn: str, now: float) -> DeviceRec | None:
        """The authenticated device, or None once the INVITE has been answered."""
        if self.throttle.blocked(peer.host, now):
            self._forbid(req, txn)
            return None
        value = req.headers.get("proxy-authorization")
        creds = Credentials.parse(value) if value else None
        if creds is None:
            self._challenge(req, txn, now, stale=False)
            return None
        dev = await self.directory.get(creds.username, now)
        ha1 = dev.ha1(creds.algorithm) if dev is not None else None
        verdict = self.digest.verify(creds, "INVITE", ha1, now)
        if verdict is Verdict.STALE:
            self._challenge(req, txn, now, stale=True)
            return None
        if verdict is not Verdict.OK or dev is None or self.throttle.user_blocked(
            creds.username, now
        ):
            self.throttle.fail_auth(peer.host, creds.username, now)
            self._forbid(req, txn)
            return None
        return dev
