"""The registrar (RFC 3261 §10.3) with digest authentication (RFC 7616/8760).

The common case — a device refreshing its binding, the device already in the
directory cache — is answered synchronously; only a cache miss waits for the store.
Unknown users and wrong passwords get the same answers, so the registrar does not
reveal which accounts exist.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable

from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.pbx.throttle import FailureThrottle
from tongdai.settings import Settings
from tongdai.sip.digest import Credentials, DigestServer, Verdict
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.sip.uri import NameAddr, SipUri, parse_name_addrs
from tongdai.store.records import DeviceRec, Registration

log = logging.getLogger("tongdai.registrar")

Responder = Callable[[str, Response], None]


class Registrar:
    def __init__(
        self, *, settings: Settings, directory: DeviceDirectory, location: Location,
        digest: DigestServer, throttle: FailureThrottle, respond: Responder,
        wall_clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.location = location
        self.digest = digest
        self.throttle = throttle
        self.respond = respond
        self.wall = wall_clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {"ok": 0, "challenged": 0, "failed": 0, "blocked": 0}

    def handle(self, req: Request, peer: Peer, txn: str) -> None:
        now = self.wall()
        if self.throttle.blocked(peer.host, now):
            self.stats["blocked"] += 1
            self.respond(txn, make_response(req, 403, "Forbidden (too many failures)"))
            return
        try:
            aor = _aor_user(req)
        except RemoteProtocolError as exc:
            self.respond(txn, make_response(req, exc.status or 400, exc.reason))
            return
        auth = req.headers.get("authorization")
        if auth is None:
            self._challenge(req, txn, now, stale=False)
            return
        creds = Credentials.parse(auth)
        if creds is None:
            self.respond(txn, make_response(req, 400, "Bad Authorization"))
            return
        hit, dev = self.directory.cached(creds.username, now)
        if hit:
            self._authenticated(req, peer, txn, creds, aor, dev, now)
            return
        task = asyncio.get_running_loop().create_task(
            self._lookup_then(req, peer, txn, creds, aor)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup_then(
        self, req: Request, peer: Peer, txn: str, creds: Credentials, aor: str
    ) -> None:
        try:
            dev = await self.directory.get(creds.username, self.wall())
        except Exception:
            log.exception("device lookup failed")
            self.respond(txn, make_response(req, 500, "Server Internal Error"))
            return
        self._authenticated(req, peer, txn, creds, aor, dev, self.wall())

    def _challenge(self, req: Request, txn: str, now: float, *, stale: bool) -> None:
        self.stats["challenged"] += 1
        self.respond(txn, self.digest.challenge_response(
            req, now, os.urandom(8), to_tag=os.urandom(6).hex(), stale=stale))

    def _fail(self, req: Request, peer: Peer, txn: str, user: str, now: float) -> None:
        self.stats["failed"] += 1
        self.throttle.fail_auth(peer.host, user, now)
        self.respond(txn, make_response(req, 403, "Forbidden", to_tag=os.urandom(6).hex()))

    def _authenticated(
        self, req: Request, peer: Peer, txn: str, creds: Credentials, aor: str,
        dev: DeviceRec | None, now: float,
    ) -> None:
        if self.throttle.user_blocked(creds.username, now):
            self.stats["blocked"] += 1
            self.respond(txn, make_response(req, 403, "Forbidden (too many failures)"))
            return
        ha1 = dev.ha1(creds.algorithm) if dev is not None else None
        verdict = self.digest.verify(creds, "REGISTER", ha1, now)
        if verdict is Verdict.STALE:
            self._challenge(req, txn, now, stale=True)
            return
        # A device may only register its own address of record.
        if verdict is not Verdict.OK or dev is None or creds.username != aor:
            self._fail(req, peer, txn, creds.username, now)
            return
        self.throttle.success(peer.host)
        self._bind(req, peer, txn, dev, now)

    def _bind(self, req: Request, peer: Peer, txn: str, dev: DeviceRec, now: float) -> None:
        s = self.settings
        header_exp = req.headers.get("expires")
        default = s.register_default_expires
        if header_exp is not None:
            default = _int_or(header_exp, default)
        contacts = req.headers.values("contact")
        set_: list[Registration] = []
        remove: list[str] = []
        remove_all = False
        if contacts == ["*"]:
            # RFC 3261 §10.3 step 6: "*" only with Expires: 0.
            if header_exp is None or _int_or(header_exp, -1) != 0:
                self.respond(txn, make_response(req, 400, "Contact * requires Expires: 0"))
                return
            remove_all = True
        elif contacts:
            try:
                addrs: list[NameAddr] = []
                for c in contacts:
                    addrs.extend(parse_name_addrs(c))
                if any(na.is_star for na in addrs):
                    # "*" is only valid alone (RFC 3261 §10.3 step 6).
                    raise RemoteProtocolError(400, "Contact * must stand alone")
            except RemoteProtocolError:
                self.respond(txn, make_response(req, 400, "Bad Contact"))
                return
            call_id = req.call_id
            cseq = req.cseq[0]
            ua = (req.headers.get("user-agent") or "")[:200]
            for na in addrs:
                exp_param = dict(na.params).get("expires")
                exp = _int_or(exp_param, default) if exp_param is not None else default
                contact = str(na.uri)
                if exp == 0:
                    remove.append(contact)
                    continue
                if exp < s.register_min_expires:
                    resp = make_response(req, 423, to_tag=os.urandom(6).hex())
                    resp.headers.add("min-expires", s.register_min_expires)
                    self.respond(txn, resp)
                    return
                exp = min(exp, s.register_max_expires)
                set_.append(Registration(
                    sip_user=dev.sip_user, contact=contact, source_host=peer.host,
                    source_port=peer.port, transport=peer.transport,
                    expires_at=now + exp, call_id=call_id, cseq=cseq, user_agent=ua,
                ))
        current = self.location.apply(
            sip_user=dev.sip_user, app_id=dev.app_id, set_=set_, remove=remove,
            remove_all=remove_all,
        )
        self.stats["ok"] += 1
        resp = make_response(req, 200, to_tag=os.urandom(6).hex())
        for reg in current:
            left = max(0, int(reg.expires_at - now))
            resp.headers.add("contact", f"<{reg.contact}>;expires={left}")
        self.respond(txn, resp)


def _int_or(value: str | None, default: int) -> int:
    if value is None:
        return default
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 10 else default


# The common To of a REGISTER: <sip:user@host...> or sip:user@host, no escapes.
_SIMPLE_AOR = re.compile(r"^(?:[^<]*<)?sips?:([A-Za-z0-9._~!$&'()*+,;=-]+)@")


def _aor_user(req: Request) -> str:
    to = req.headers.get("to")
    if to is None:
        raise RemoteProtocolError(400, "Missing To")
    m = _SIMPLE_AOR.match(to)
    if m is not None and ";" not in m.group(1):
        return m.group(1)
    uri: SipUri = NameAddr.parse(to).uri
    if not uri.user:
        raise RemoteProtocolError(404, "Not Found")
    return uri.user


