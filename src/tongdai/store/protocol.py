"""What the rest of tongdai needs from storage. SQLite and PostgreSQL both implement
it through one SQLAlchemy class; the shared test suite runs against both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tongdai.store.records import (
    AppRec,
    Cdr,
    DeviceRec,
    DidRec,
    Registration,
    TokenRec,
    TrunkRec,
)


class Store(Protocol):
    async def close(self) -> None: ...
    async def config_version(self) -> int:
        """A counter that changes whenever apps, devices, DIDs or trunks change."""

    # Apps (tenants)
    async def create_app(self, name: str) -> AppRec: ...
    async def get_app(self, app_id: str) -> AppRec | None: ...
    async def list_apps(self) -> Sequence[AppRec]: ...
    async def rotate_secret(self, app_id: str) -> AppRec: ...
    async def delete_app(self, app_id: str) -> None: ...
    async def update_app(
        self, app_id: str, *, record_calls: bool | None = None, default_did: str | None = None
    ) -> AppRec: ...

    # Devices: passwords arrive in plaintext and are stored as HA1 (MD5 and SHA-256)
    # computed with ``realm``.
    async def add_device(
        self, app_id: str, sip_user: str, password: str, *, realm: str,
        display_name: str = "", extension: str | None = None,
    ) -> DeviceRec: ...
    async def get_device(self, sip_user: str) -> DeviceRec | None: ...
    async def find_device(self, app_id: str, name: str) -> DeviceRec | None:
        """The app's device whose sip_user or extension is ``name``."""
    async def list_devices(self, app_id: str | None = None) -> Sequence[DeviceRec]: ...
    async def set_password(
        self, sip_user: str, password: str, *, realm: str, app_id: str | None = None
    ) -> DeviceRec: ...
    async def remove_device(self, sip_user: str, *, app_id: str | None = None) -> None: ...

    # DIDs
    async def add_did(self, app_id: str, number: str, sip_user: str) -> DidRec: ...
    async def get_did(self, number: str) -> DidRec | None: ...
    async def list_dids(self, app_id: str | None = None) -> Sequence[DidRec]: ...
    async def remove_did(self, number: str, *, app_id: str | None = None) -> None: ...

    # Trunks
    async def add_trunk(
        self, app_id: str, name: str, *, host: str, port: int = 5060, transport: str = "udp",
        username: str | None = None, password: str | None = None,
        prefix: str = "", strip: int = 0,
    ) -> TrunkRec: ...
    async def list_trunks(self, app_id: str | None = None) -> Sequence[TrunkRec]: ...
    async def remove_trunk(self, name: str, *, app_id: str) -> None: ...

    # Registrations (location service)
    async def save_registration(self, reg: Registration) -> None:
        """Insert or replace the binding (sip_user, contact)."""
    async def sync_registrations(
        self, upserts: Sequence[Registration], deletes: Sequence[tuple[str, str]]
    ) -> None:
        """Apply many binding changes in one transaction."""
    async def delete_registration(self, sip_user: str, contact: str) -> None: ...
    async def load_registrations(self, now: float) -> Sequence[Registration]:
        """Every binding that has not expired at ``now``."""
    async def purge_registrations(self, now: float) -> int: ...

    # CDRs
    async def add_cdr(self, cdr: Cdr) -> None:
        """Store durably (committed) before returning."""
    async def add_cdrs(self, cdrs: Sequence[Cdr]) -> None:
        """Store many CDRs in one committed transaction (all or none)."""
    async def get_cdr(self, call_id: str) -> Cdr | None: ...
    async def list_cdrs(
        self, app_id: str, start_ts: float, end_ts: float, *, limit: int, offset: int
    ) -> tuple[int, Sequence[Cdr]]:
        """(total, page): the app's CDRs with started_at in [start_ts, end_ts],
        newest first, ties broken by call_id so paging is stable."""
    async def cdr_by_recording(self, app_id: str, recording: str) -> Cdr | None: ...

    # Websocket auth tokens
    async def add_token(self, tok: TokenRec) -> None: ...
    async def get_token(self, token_hash: str) -> TokenRec | None: ...
    async def revoke_tokens(self, app_id: str, sip_user: str | None = None) -> None: ...
