"""The registrar (RFC 3261 §10.3) with digest authentication (RFC 7616/8760).

The common case — a device refreshing its binding, the device already in the
directory cache — is answered synchronously; only a cache miss waits for the store.
Unknown users and wrong passwords get the same answers, so the registrar does not
reveal which accounts exist.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable

from tongdai import logs
from tongdai.pbx import path
from tongdai.pbx.digest_gate import DigestGate
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.location import Location
from tongdai.settings import Settings
from tongdai.sip import ids
from tongdai.sip.digest import Credentials, DigestServer
from tongdai.sip.errors import RemoteProtocolError
from tongdai.sip.message import Request, Response, make_response
from tongdai.sip.peer import Peer
from tongdai.sip.uri import NameAddr, SipUri, parse_name_addrs
from tongdai.store.records import DeviceRec, Registration
from tongdai.throttle import AuthThrottle

log = logging.getLogger("tongdai.registrar")

Responder = Callable[[str, Response], None]


class Registrar:
    def __init__(
        self, *, settings: Settings, directory: DeviceDirectory, location: Location,
        digest: DigestServer, throttle: AuthThrottle, respond: Responder,
        wall_clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.location = location
        self.digest = digest
        self.throttle = throttle
        self.respond = respond
        self.wall = wall_clock
        self.gate = DigestGate(digest=digest, directory=directory, throttle=throttle,
                               respond=respond, proxy=False,
                               edges=settings.sip_edge_addresses)
        self._tasks: set[asyncio.Task[None]] = set()
        self.ok = 0

    @property
    def stats(self) -> dict[str, int]:
        """REGISTERs bound ("ok"), challenged, failed and blocked."""
        return {"ok": self.ok, **self.gate.stats}

    def handle(self, req: Request, peer: Peer, txn: str) -> None:
        now = self.wall()
        if self.gate.blocked(req, txn, self.gate.client_host(req, peer), None, now):
            return
        try:
            aor = _aor_user(req)
        except RemoteProtocolError as exc:
            self.respond(txn, make_response(req, exc.status or 400, exc.reason))
            return
        creds = self.gate.credentials(req, txn, now)
        if creds is None:
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

    def _authenticated(
        self, req: Request, peer: Peer, txn: str, creds: Credentials, aor: str,
        dev: DeviceRec | None, now: float,
    ) -> None:
        # A device may only register its own address of record.
        if self.gate.verify(req, peer, txn, creds, dev, now,
                            permitted=creds.username == aor) is not None:
            assert dev is not None
            self._bind(req, peer, txn, dev, now)

    def _bind(self, req: Request, peer: Peer, txn: str, dev: DeviceRec, now: float) -> None:
        route = tuple(req.headers.values("path"))
        bad_path = path.refusal(route, peer)
        if bad_path is not None:
            self._refuse(req, txn, dev, peer, bad_path.status or 400, bad_path.reason)
            return
        changes = self._changes(req, peer, txn, dev, route, now)
        if changes is None:
            return
        set_, remove, remove_all = changes
        current = self.location.apply(
            sip_user=dev.sip_user, app_id=dev.app_id, set_=set_, remove=remove,
            remove_all=remove_all,
        )
        self.ok += 1
        self.respond(txn, _bound(req, current, route, now))

    def _changes(
        self, req: Request, peer: Peer, txn: str, dev: DeviceRec, route: tuple[str, ...],
        now: float,
    ) -> tuple[list[Registration], list[str], bool] | None:
        """The bindings a REGISTER sets and removes, and whether it removes them all
        (RFC 3261 §10.3 steps 6-7); None when it asked for what is refused (answered)."""
        s = self.settings
        header_exp = req.headers.get("expires")
        default = s.register_default_expires
        if header_exp is not None:
            default = _int_or(header_exp, default)
        contacts = req.headers.values("contact")
        set_: list[Registration] = []
        remove: list[str] = []
        if contacts == ["*"]:
            # RFC 3261 §10.3 step 6: "*" only with Expires: 0.
            if header_exp is None or _int_or(header_exp, -1) != 0:
                self._refuse(req, txn, dev, peer, 400, "Contact * requires Expires: 0")
                return None
            return set_, remove, True
        if not contacts:  # a query: the answer lists the current bindings
            return set_, remove, False
        try:
            bound: list[tuple[str, str | None]] = []
            for c in contacts:
                bound.extend(_contacts(c))
        except RemoteProtocolError:
            self._refuse(req, txn, dev, peer, 400, "Bad Contact")
            return None
        call_id = req.call_id
        cseq = req.cseq[0]
        ua = (req.headers.get("user-agent") or "")[:200]
        for contact, exp_param in bound:
            exp = _int_or(exp_param, default) if exp_param is not None else default
            if exp == 0:
                remove.append(contact)
                continue
            if exp < s.register_min_expires:
                _refused(dev, peer, 423, f"expires {exp} below {s.register_min_expires}")
                resp = make_response(req, 423, to_tag=ids.new_tag())
                resp.headers.add("min-expires", s.register_min_expires)
                self.respond(txn, resp)
                return None
            exp = min(exp, s.register_max_expires)
            set_.append(Registration(
                sip_user=dev.sip_user, contact=contact, source_host=peer.host,
                source_port=peer.port, transport=peer.transport,
                expires_at=now + exp, call_id=call_id, cseq=cseq, user_agent=ua,
                path=route,
            ))
        return set_, remove, False

    def _refuse(self, req: Request, txn: str, dev: DeviceRec, peer: Peer, status: int,
                reason: str) -> None:
        _refused(dev, peer, status, reason)
        self.respond(txn, make_response(req, status, reason))


def _bound(req: Request, current: list[Registration], route: tuple[str, ...],
           now: float) -> Response:
    """The 200 to a REGISTER: every binding of the address of record with the seconds
    it has left (RFC 3261 §10.3 step 8)."""
    resp = make_response(req, 200, to_tag=ids.new_tag())
    for reg in current:
        left = max(0, int(reg.expires_at - now))
        resp.headers.add("contact", f"<{reg.contact}>;expires={left}")
    # RFC 3327 §5.3: the stored Path is echoed to a device that supports it.
    if route and "path" in (v.lower() for v in req.headers.values("supported")):
        for value in route:
            resp.headers.add("path", value)
    return resp


def _refused(dev: DeviceRec, peer: Peer, status: int, reason: str) -> None:
    """A REGISTER refused for what it asked, after authentication succeeded."""
    logs.event(log, "registration.refused", user=dev.sip_user, app_id=dev.app_id,
               transport=peer.transport, source=f"{peer.host}:{peer.port}", status=status,
               reason=reason)


# Contact header values read lately: a device refreshing its binding sends the same
# value every time, and reading it is a good part of a REGISTER's cost.
CONTACT_MEMORY = 4096


@functools.lru_cache(maxsize=CONTACT_MEMORY)
def _contacts(value: str) -> tuple[tuple[str, str | None], ...]:
    """(contact URI, its expires parameter) for each address of one Contact value;
    raises RemoteProtocolError (400) when it does not parse or holds a "*" among others
    (RFC 3261 §10.3 step 6: "*" is only valid alone). Errors are not remembered."""
    addrs = parse_name_addrs(value)
    if any(na.is_star for na in addrs):
        raise RemoteProtocolError(400, "Contact * must stand alone")
    return tuple((str(na.uri), dict(na.params).get("expires")) for na in addrs)


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


