"""The demo's console sign-in: operator ``admin`` of every app, its password kept in
``<data dir>/secrets/demo-console.json`` (0600) so that ``tongdai demo`` and
``./scripts/start`` can show it at every start, as they show the demo devices'."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import string

from tongdai.admin.credentials import password_matches
from tongdai.admin.service import AdminService, Principal
from tongdai.settings import Settings
from tongdai.store.protocol import Store
from tongdai.store.sql import SqlStore

OPERATOR = "admin"
FILE = "demo-console.json"
_ALNUM = string.ascii_letters + string.digits


async def console_login(store: Store, settings: Settings) -> dict[str, str | None] | None:
    """``{"name", "password"}`` of the demo operator, made on the first start; the
    password is None once it no longer matches (changed by hand). None: no SQL store."""
    if not isinstance(store, SqlStore):
        return None
    path = settings.data_dir / "secrets" / FILE
    saved: str | None = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        saved = str(json.loads(path.read_text())["password"])
    op = await store.get_operator(OPERATOR)
    if op is None:
        saved = "".join(secrets.choice(_ALNUM) for _ in range(16))
        svc = AdminService(store=store, settings=settings, principal=Principal(actor="demo"))
        await svc.add_operator(OPERATOR, saved)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{FILE}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"name": OPERATOR, "password": saved}, f)
        os.replace(tmp, path)
        return {"name": OPERATOR, "password": saved}
    ok = saved is not None and password_matches(saved, op.password_hash)
    return {"name": OPERATOR, "password": saved if ok else None}
