"""Temporary stand-in for the SQL store while it is being built (subset of Store)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace

from tongdai.store import AppRec, Cdr, DeviceRec, TokenRec


class MemStore:
    def __init__(self) -> None:
        self.apps: dict[str, AppRec] = {}
        self.devices: dict[str, DeviceRec] = {}
        self.cdrs: dict[str, Cdr] = {}
        self.tokens: dict[str, TokenRec] = {}

    async def close(self) -> None:
        pass

    async def create_app(self, name: str) -> AppRec:
        app = AppRec(app_id=secrets.token_hex(8), app_secret=secrets.token_hex(16), name=name,
                     created_at=time.time())
        self.apps[app.app_id] = app
        return app

    async def get_app(self, app_id: str) -> AppRec | None:
        return self.apps.get(app_id)

    async def add_device(self, app_id: str, sip_user: str, password: str, *, realm: str,
                         display_name: str = "", extension: str | None = None) -> DeviceRec:
        d = DeviceRec(sip_user=sip_user, app_id=app_id, realm=realm,
                      ha1_md5=hashlib.md5(f"{sip_user}:{realm}:{password}".encode()).hexdigest(),
                      ha1_sha256="", display_name=display_name, extension=extension)
        self.devices[sip_user] = d
        return d

    async def get_device(self, sip_user: str) -> DeviceRec | None:
        return self.devices.get(sip_user)

    async def find_device(self, app_id: str, name: str) -> DeviceRec | None:
        for d in self.devices.values():
            if d.app_id == app_id and name in (d.sip_user, d.extension):
                return d
        return None

    async def remove_device(self, sip_user: str, *, app_id: str | None = None) -> None:
        self.devices.pop(sip_user, None)

    async def add_cdr(self, cdr: Cdr) -> None:
        self.cdrs[cdr.call_id] = cdr

    async def list_cdrs(self, app_id: str, start_ts: float, end_ts: float, *, limit: int,
                        offset: int) -> tuple[int, Sequence[Cdr]]:
        rows = [c for c in self.cdrs.values()
                if c.app_id == app_id and start_ts <= c.started_at <= end_ts]
        rows.sort(key=lambda c: c.call_id, reverse=True)
        rows.sort(key=lambda c: c.started_at, reverse=True)
        return len(rows), rows[offset:offset + limit]

    async def cdr_by_recording(self, app_id: str, recording: str) -> Cdr | None:
        for c in self.cdrs.values():
            if c.app_id == app_id and c.recording == recording:
                return c
        return None

    async def add_token(self, tok: TokenRec) -> None:
        self.tokens[tok.token_hash] = tok

    async def get_token(self, token_hash: str) -> TokenRec | None:
        return self.tokens.get(token_hash)

    async def revoke_tokens(self, app_id: str, sip_user: str | None = None) -> None:
        for h, t in list(self.tokens.items()):
            if t.app_id == app_id and (sip_user is None or t.sip_user == sip_user):
                self.tokens[h] = replace(t, revoked=True)
