"""The Open API's websocket auth tokens, stored as hashes. ``SqlStore``
(``store/sql.py``) inherits these methods: ``Tokens`` in ``store/protocol.py``."""

from __future__ import annotations

import time

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tongdai.store.engine import Database
from tongdai.store.errors import Conflict
from tongdai.store.models import AuthToken
from tongdai.store.records import TokenRec

# Expired tokens are deleted when a new one is added, this long after they expired
# (kept a while so "expired" and "unknown" stay distinguishable in logs).
TOKEN_GRACE = 3600.0


def _token_rec(t: AuthToken) -> TokenRec:
    return TokenRec(
        token_hash=t.token_hash, app_id=t.app_id, sip_user=t.sip_user,
        expires_at=t.expires_at, revoked=t.revoked,
    )



class TokenTables(Database):
    async def add_token(self, tok: TokenRec) -> None:
        row = AuthToken(
            token_hash=tok.token_hash, app_id=tok.app_id, sip_user=tok.sip_user,
            expires_at=tok.expires_at, revoked=tok.revoked,
        )
        try:
            async with self._write() as s:
                # Keeps the table to the tokens of the last hour or so.
                await s.execute(
                    delete(AuthToken).where(AuthToken.expires_at < time.time() - TOKEN_GRACE)
                )
                s.add(row)
        except IntegrityError:
            raise Conflict(
                "the token already exists, or its app or device does not exist"
            ) from None

    async def get_token(self, token_hash: str) -> TokenRec | None:
        """The token, also when expired or revoked (the caller decides)."""
        async with self._read() as s:
            row = await s.get(AuthToken, token_hash)
            return _token_rec(row) if row else None

    @staticmethod
    async def _revoke(s: AsyncSession, app_id: str, sip_user: str | None) -> None:
        stmt = update(AuthToken).where(AuthToken.app_id == app_id).values(revoked=True)
        if sip_user is not None:
            stmt = stmt.where(AuthToken.sip_user == sip_user)
        await s.execute(stmt)
