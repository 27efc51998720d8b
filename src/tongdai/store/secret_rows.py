"""The store's encrypted columns: ``apps.app_secret`` and ``trunks.password``.

Each value is sealed (``store/sealing.py``) with the row it belongs to as associated
data. ``reseal`` runs at every start: it seals what an older tongdai left in clear and
checks that this process's key opens the rest, so a node started with another key
stops at once instead of writing secrets the other nodes cannot read. When the key is
lost for good, ``reseal(replace_unreadable=True)`` (``tongdai db reset-secrets``) gives
the apps new secrets and drops the trunk passwords it cannot open.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tongdai.store.engine import Database
from tongdai.store.models import App, Trunk
from tongdai.store.sealing import KeyMismatch, Sealed, SecretBox, is_sealed


def new_app_secret() -> str:
    return secrets.token_hex(32)  # 256 bits


@dataclass(frozen=True, slots=True, kw_only=True)
class Resealed:
    """What ``reseal`` changed."""

    sealed: int = 0  # clear values now encrypted
    new_secrets: tuple[str, ...] = ()  # apps given a new secret (theirs did not open)
    dropped_passwords: tuple[tuple[str, str], ...] = ()  # trunks (app_id, name)


class SecretRows(Database):
    def __init__(self, engine: AsyncEngine, *, box: SecretBox) -> None:
        super().__init__(engine)
        self._box = box

    def _seal_app_secret(self, app_id: str, clear: str) -> str:
        return self._box.seal(clear, _app_context(app_id))

    def _app_secret(self, a: App) -> Sealed:
        return self._box.wrap(a.app_secret, _app_context(a.app_id))

    def _seal_trunk_password(self, trunk_id: int, clear: str) -> str:
        return self._box.seal(clear, _trunk_context(trunk_id))

    def _trunk_password(self, t: Trunk) -> Sealed | None:
        if t.password is None:
            return None
        return self._box.wrap(t.password, _trunk_context(t.trunk_id))

    async def reseal(self, *, replace_unreadable: bool = False) -> Resealed:
        """Seal the values stored in clear and check the others open with this key.

        Raises ``KeyMismatch`` for a value sealed with another key, unless
        ``replace_unreadable``: then such an app gets a new secret and such a trunk
        loses its password (both are reported).
        """
        async with self._write() as s:
            sealed, new_secrets = await self._reseal_apps(s, replace_unreadable)
            more, dropped = await self._reseal_trunks(s, replace_unreadable)
        return Resealed(sealed=sealed + more, new_secrets=new_secrets,
                        dropped_passwords=dropped)

    async def _reseal_apps(self, s: AsyncSession, replace: bool) -> tuple[int, tuple[str, ...]]:
        sealed, renewed = 0, []
        for app_id, stored in (await s.execute(select(App.app_id, App.app_secret))).all():
            if is_sealed(stored):
                try:
                    self._box.open(stored, _app_context(app_id))
                    continue
                except KeyMismatch:
                    if not replace:
                        raise
                clear = new_app_secret()
                renewed.append(app_id)
            else:
                clear = stored
                sealed += 1
            await s.execute(
                update(App).where(App.app_id == app_id, App.app_secret == stored)
                .values(app_secret=self._seal_app_secret(app_id, clear)))
        return sealed, tuple(renewed)

    async def _reseal_trunks(
        self, s: AsyncSession, replace: bool
    ) -> tuple[int, tuple[tuple[str, str], ...]]:
        sealed, dropped = 0, []
        rows = await s.execute(select(Trunk.trunk_id, Trunk.app_id, Trunk.name, Trunk.password)
                               .where(Trunk.password.is_not(None)))
        for trunk_id, app_id, name, password in rows.all():
            stored = str(password)
            value: str | None
            if is_sealed(stored):
                try:
                    self._box.open(stored, _trunk_context(trunk_id))
                    continue
                except KeyMismatch:
                    if not replace:
                        raise
                value = None
                dropped.append((app_id, name))
            else:
                value = self._seal_trunk_password(trunk_id, stored)
                sealed += 1
            await s.execute(
                update(Trunk).where(Trunk.trunk_id == trunk_id, Trunk.password == stored)
                .values(password=value))
        return sealed, tuple(dropped)


def _app_context(app_id: str) -> str:
    return f"apps.app_secret:{app_id}"


def _trunk_context(trunk_id: int) -> str:
    return f"trunks.password:{trunk_id}"
