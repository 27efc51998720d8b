"""Console sessions: a signed cookie naming the principal, and CSRF tokens bound to it.

The cookie is ``base64(json).hmac`` under a key kept in the data dir
(``secrets/console.key``), so sessions survive a restart and need no table; each
request checks that the key or operator behind it still exists (revoking a key ends
its sessions). A form's CSRF token is an HMAC of the session's random nonce: a page
of another site can neither read it nor compute it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from tongdai.admin.service import Principal

COOKIE = "td_console"
PRE_COOKIE = "td_signin"  # binds the sign-in form's CSRF token before any session
LIFETIME = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    expires: float
    nonce: str


class Sessions:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, what: str) -> str:
        return hmac.new(self._key, what.encode(), hashlib.sha256).hexdigest()

    def issue(self, principal: Principal, now: float) -> tuple[str, Session]:
        s = Session(principal, now + LIFETIME, secrets.token_urlsafe(16))
        body = json.dumps({"a": principal.actor, "s": principal.app_id, "e": s.expires,
                           "n": s.nonce}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{payload}.{self._mac('session:' + payload)}", s

    def read(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac("session:" + payload).encode()):
            return None
        try:
            d = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            s = Session(Principal(actor=str(d["a"]), app_id=d["s"]), float(d["e"]),
                        str(d["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        return s if s.expires > now else None

    def csrf(self, nonce: str) -> str:
        return self._mac("csrf:" + nonce)

    def csrf_ok(self, nonce: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(nonce).encode(),
                                                   (given or "").encode())
