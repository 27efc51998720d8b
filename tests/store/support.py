"""What the storage tests share."""

from __future__ import annotations

from sqlalchemy import update

from tongdai.store.cdrs import _cdr_rec
from tongdai.store.models import AuthToken, CdrRow
from tongdai.store.records import Cdr
from tongdai.store.sql import SqlStore

# The key sealing app secrets and trunk passwords in test databases (a server keeps
# its own in its data dir: tongdai.keys.store_key).
STORE_KEY = b"tongdai-test-store-key-32-bytes!"


async def stored_cdr(store: SqlStore, call_id: str) -> Cdr | None:
    """The CDR of ``call_id`` as stored (the product reads CDRs only per app)."""
    async with store._read() as s:
        row = await s.get(CdrRow, call_id)
        return _cdr_rec(row) if row else None


async def revoke_tokens(store: SqlStore, app_id: str, sip_user: str | None = None) -> None:
    """Mark the tokens of an app (or of one of its devices) revoked, as an operator
    revoking access in the database would."""
    stmt = update(AuthToken).where(AuthToken.app_id == app_id).values(revoked=True)
    if sip_user is not None:
        stmt = stmt.where(AuthToken.sip_user == sip_user)
    async with store._write() as s:
        await s.execute(stmt)
