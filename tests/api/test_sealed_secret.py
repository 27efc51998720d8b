"""The app secret is sealed in the database, yet the Open API checks app hashes with it."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from tongdai.store.sql import SqlStore

from .support import Tenants, sha

URL = "/oapi/v1/voice/auth_token"


async def test_a_sealed_app_secret_still_authenticates(
    client: httpx.AsyncClient, tenants: Tenants, store: SqlStore
) -> None:
    a = tenants.a
    async with store._engine.connect() as conn:  # the row as the database holds it
        stored = (await conn.execute(text("SELECT app_secret FROM apps WHERE app_id = :i"),
                                     {"i": a.app_id})).scalar_one()
    assert stored.startswith("enc1:") and a.secret not in stored
    r = await client.post(URL, headers=a.headers(), json=a.creds())
    assert r.status_code == 200, r.text
    # The stored value itself is no app secret: hashing with it is refused.
    wrong = await client.post(URL, headers=a.headers(hash_=sha(a.app_id, stored)),
                              json=a.creds())
    assert wrong.status_code == 401

