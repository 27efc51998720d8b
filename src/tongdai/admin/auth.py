"""Who is calling the admin API or signing in to the console.

An admin key (``Authorization: Bearer tdk_...``) or an operator's name and password
becomes a ``Principal``; failures are counted per client address by the shared
throttle (``tongdai.throttle``), and every failure looks the same whether the key id,
the key or the password was wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tongdai.admin.credentials import key_id_of, key_matches, password_matches
from tongdai.admin.service import Principal
from tongdai.admin.store import AdminTables
from tongdai.throttle import AuthThrottle

_DUMMY_HASH = "0" * 64


class AuthFailed(Exception):
    """Wrong credentials (401), or too many failures from this address (429)."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdminAuth:
    def __init__(self, *, store: AdminTables, throttle: AuthThrottle,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.throttle = throttle
        self.clock = clock

    def _check_not_blocked(self, client: str) -> None:
        wait = self.throttle.retry_after(client, None, self.clock())
        if wait > 0:
            raise AuthFailed("Too many failed sign-ins from this address; retry later.",
                             retry_after=wait)

    def _fail(self, client: str, message: str) -> AuthFailed:
        self.throttle.failure(client, None, self.clock())
        return AuthFailed(message)

    async def key(self, client: str, key: str) -> Principal:
        """The principal of an admin key that exists and is not revoked."""
        self._check_not_blocked(client)
        key_id = key_id_of(key)
        rec = await self.store.get_admin_key(key_id) if key_id is not None else None
        ok = key_matches(key, rec.key_hash if rec is not None else _DUMMY_HASH)
        if rec is None or not ok or rec.revoked_at is not None:
            raise self._fail(client, "The admin key is wrong or revoked.")
        return Principal(actor=f"key:{rec.key_id}", app_id=rec.app_id)

    async def still_valid(self, principal: Principal) -> bool:
        """A signed-in console session stays valid while its key or operator does."""
        kind, _, name = principal.actor.partition(":")
        if kind == "key":
            rec = await self.store.get_admin_key(name)
            return rec is not None and rec.revoked_at is None and rec.app_id == principal.app_id
        if kind == "operator":
            op = await self.store.get_operator(name)
            return op is not None and op.app_id == principal.app_id
        return False

    async def operator(self, client: str, name: str, password: str) -> Principal:
        self._check_not_blocked(client)
        op = await self.store.get_operator(name) if len(name) <= 64 else None
        # scrypt takes tens of milliseconds of CPU: off the event loop.
        ok = await asyncio.to_thread(password_matches, password,
                                     op.password_hash if op is not None else None)
        if op is None or not ok:
            raise self._fail(client, "The operator name or password is wrong.")
        return Principal(actor=f"operator:{op.name}", app_id=op.app_id)
