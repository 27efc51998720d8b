"""Who is calling: app hashes, device passwords, and the failure throttle around them.

- App hash: ``sha256(appId + appSecret)`` (or the endpoint's longer concatenation),
  lowercase hex of the UTF-8 bytes; accepted in any letter case, compared in
  constant time.
- Device password: the store keeps only HA1 = ``md5(sip_user:realm:password)``
  (RFC 7616 §3.4.2), so the password is checked by recomputing HA1.

Every failure answers 401 with the same message whether the app, the device or the
secret was wrong, so nobody learns which app ids or devices exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

from tongdai.api.errors import ApiError, unauthorized
from tongdai.api.ratelimit import AppRateLimit
from tongdai.store import AppRec, DeviceRec
from tongdai.store.protocol import Configuration
from tongdai.throttle import AuthThrottle

MAX_ID_LEN = 128
MAX_SECRET_LEN = 256
# Compared against when the app does not exist, so an unknown app costs the same.
_DUMMY_SECRET = "0" * 64


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def ha1_md5(sip_user: str, realm: str, password: str) -> str:
    data = f"{sip_user}:{realm}:{password}".encode("utf-8", "surrogatepass")
    return hashlib.md5(data).hexdigest()


def hash_matches(given: str, candidates: Iterable[str]) -> bool:
    """True if ``given`` equals one candidate hex digest, ignoring case.

    Every candidate is compared (no early exit) and each comparison is
    constant-time, so timing says nothing about how close a guess was.
    """
    g = given.strip().lower().encode("utf-8", "surrogatepass")
    ok = False
    for c in candidates:
        ok |= hmac.compare_digest(g, c.lower().encode())
    return ok


class Authenticator:
    """Checks app hashes and device passwords; throttles repeated failures per address."""

    def __init__(
        self, *, store: Configuration, throttle: AuthThrottle, clock: Callable[[], float],
        limit: AppRateLimit | None = None,
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.clock = clock
        self.limit = limit

    def check_not_blocked(self, client: str) -> None:
        wait = self.throttle.retry_after(client, None, self.clock())
        if wait > 0:
            raise ApiError(
                429, "rate_limited",
                "Too many failed authentications from this address; retry later.",
                headers={"Retry-After": str(int(wait) + 1)},
            )

    def fail(self, client: str, message: str) -> ApiError:
        self.throttle.failure(client, None, self.clock())
        return unauthorized(message)

    async def app_by_hash(
        self, client: str, app_id: str, given_hash: str, parts: Callable[[str], Iterable[str]]
    ) -> AppRec:
        """The app ``app_id`` if ``given_hash`` matches one of ``parts(secret)``.

        ``parts`` turns the app secret into the candidate plaintexts whose sha256 the
        client may have sent (several when optional parameters were omitted).
        """
        self.check_not_blocked(client)
        app = await self.store.get_app(app_id) if len(app_id) <= MAX_ID_LEN else None
        # Decrypted only here, for the one comparison (see store/sealing.py).
        secret = app.app_secret.reveal() if app is not None else _DUMMY_SECRET
        ok = hash_matches(given_hash, (sha256_hex(p) for p in parts(secret)))
        if app is None or not ok:
            raise self.fail(client, "The app id or hash is wrong; hash is sha256 of the "
                                    "documented concatenation ending with the app secret.")
        if self.limit is not None:
            self.limit.take(app.app_id, self.clock())
        return app

    async def device_of(
        self, client: str, app: AppRec, sip_user: str, password: str
    ) -> DeviceRec:
        """The app's device ``sip_user`` if ``password`` is its SIP password."""
        self.check_not_blocked(client)
        dev = await self.store.get_device(sip_user) if len(sip_user) <= MAX_ID_LEN else None
        owned = dev is not None and dev.app_id == app.app_id
        expected = dev.ha1_md5 if dev is not None and owned else _DUMMY_SECRET[:32]
        realm = dev.realm if dev is not None else ""
        ok = hmac.compare_digest(
            ha1_md5(sip_user, realm, password).encode(),
            expected.lower().encode(),
        )
        if dev is None or not owned or not ok:
            raise self.fail(client, "sipUser or sipPassword is wrong for this app.")
        return dev
