"""What the rest of tongdai needs from storage, one narrow protocol per concern.

Each consumer depends on the protocol it uses: the registrar's location service on
``Registrations``, the CDR writer and crash recovery on ``CallRecords``, the Open API
on ``Configuration``, ``Histories`` and ``Tokens``, the CLI and the demo on
``Administration``. ``Store`` is all of them at once; ``SqlStore`` (store/sql.py)
implements it for SQLite and PostgreSQL through one SQLAlchemy class, and the shared
test suite runs against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from tongdai.store.history import CdrPosition, CdrQuery
from tongdai.store.presence import Presence
from tongdai.store.records import (
    AppRec,
    CallCheckpoint,
    Cdr,
    DeviceRec,
    DidRec,
    DigestKeys,
    Registration,
    TokenRec,
    TrunkRec,
)


class Configuration(Protocol):
    """Reading the configuration calls and requests are checked against."""

    async def config_version(self) -> int:
        """A counter that changes whenever apps, devices, DIDs or trunks change."""
    async def get_app(self, app_id: str) -> AppRec | None: ...
    async def get_device(self, sip_user: str) -> DeviceRec | None: ...
    async def find_device(self, app_id: str, name: str) -> DeviceRec | None:
        """The app's device whose sip_user or extension is ``name``."""
    async def get_did(self, number: str) -> DidRec | None: ...
    async def list_trunks(self, app_id: str | None = None) -> Sequence[TrunkRec]:
        """The trunks in creation order (``trunk_id``), per app."""


class Administration(Configuration, Protocol):
    """Changing the configuration: apps (tenants), devices, DIDs and trunks."""

    async def create_app(self, name: str) -> AppRec: ...
    async def list_apps(self) -> Sequence[AppRec]: ...
    async def rotate_secret(self, app_id: str) -> AppRec: ...
    async def delete_app(self, app_id: str) -> None: ...
    async def update_app(
        self, app_id: str, *, record_calls: bool | None = None, default_did: str | None = None
    ) -> AppRec: ...

    # Devices: a password reaches the store only as its HA1 values (``DigestKeys``,
    # from ``pbx/credentials.digest_keys``).
    async def add_device(
        self, app_id: str, sip_user: str, keys: DigestKeys, *,
        display_name: str = "", extension: str | None = None,
    ) -> DeviceRec: ...
    async def list_devices(self, app_id: str | None = None) -> Sequence[DeviceRec]: ...
    async def set_keys(
        self, sip_user: str, keys: DigestKeys, *, app_id: str | None = None
    ) -> DeviceRec: ...
    async def remove_device(self, sip_user: str, *, app_id: str | None = None) -> None: ...

    async def add_did(self, app_id: str, number: str, sip_user: str) -> DidRec: ...
    async def list_dids(self, app_id: str | None = None) -> Sequence[DidRec]: ...
    async def remove_did(self, number: str, *, app_id: str | None = None) -> None: ...

    async def add_trunk(
        self, app_id: str, name: str, *, host: str, port: int = 5060, transport: str = "udp",
        username: str | None = None, password: str | None = None,
        prefix: str = "", strip: int = 0, routes: str | Sequence[str] = "", priority: int = 0,
    ) -> TrunkRec:
        """``routes``: the number prefixes the trunk serves ("09,03"; empty: all)."""
    async def update_trunk(
        self, name: str, *, app_id: str, routes: str | Sequence[str] | None = None,
        priority: int | None = None,
    ) -> TrunkRec: ...
    async def remove_trunk(self, name: str, *, app_id: str) -> None: ...


class Registrations(Protocol):
    """The location service's bindings (RFC 3261 §10), written behind in batches."""

    async def sync_registrations(
        self, upserts: Sequence[Registration], deletes: Sequence[tuple[str, str]],
        *, node: str = "",
    ) -> None:
        """Apply many binding changes in one transaction, the upserts held by
        ``node``; bindings of devices that no longer exist are skipped."""
    async def load_registrations(
        self, now: float, *, node: str | None = None,
    ) -> Sequence[Registration]:
        """Every binding that has not expired at ``now`` (with ``node``: that node's
        and those written without a node)."""
    async def purge_registrations(self, now: float) -> int: ...


class CallRecords(Protocol):
    """What a call leaves: the checkpoint of an answered call in progress (what a
    crash must not lose) and, at its end, its CDR, which replaces the checkpoint in
    the same transaction."""

    async def write_calls(
        self, *, checkpoints: Sequence[CallCheckpoint] = (), cdrs: Sequence[Cdr] = (),
        touch: tuple[str, float] | None = None,
    ) -> None:
        """One committed transaction, all or none: upsert ``checkpoints``; with
        ``touch=(node, now)`` move that node's checkpoints of calls still up to ``now``;
        store ``cdrs`` and delete their checkpoints."""
    async def add_cdr(self, cdr: Cdr) -> None:
        """Store one CDR durably (committed) before returning; ``Conflict`` if the
        call already has one."""
    async def list_checkpoints(
        self, *, node: str, stale_before: float | None = None
    ) -> Sequence[CallCheckpoint]:
        """The checkpoints of ``node``, and of any node not refreshed since ``stale_before``."""
    async def delete_checkpoint(self, call_id: str) -> None: ...


class Histories(Protocol):
    """Reading CDRs back: an app's call histories and its recordings' calls."""

    async def list_cdrs(
        self, app_id: str, start_ts: float, end_ts: float, *, limit: int, offset: int
    ) -> tuple[int, Sequence[Cdr]]:
        """(total, page): the app's CDRs with started_at in [start_ts, end_ts],
        newest first, ties broken by call_id so paging is stable."""
    async def cdr_by_recording(self, app_id: str, recording: str) -> Cdr | None: ...
    async def search_cdrs(
        self, q: CdrQuery, *, limit: int, offset: int = 0, after: CdrPosition | None = None,
    ) -> tuple[int, Sequence[Cdr]]:
        """(total, page) of the CDRs ``q`` matches, in histories order (newest first,
        ties by call_id), from just after ``after`` when given."""
    def iter_cdrs(self, q: CdrQuery, *, batch: int = 500) -> AsyncIterator[Sequence[Cdr]]:
        """Every CDR ``q`` matches, in histories order, ``batch`` at a time."""


class Tokens(Protocol):
    """The Open API's websocket tokens (stored as hashes)."""

    async def add_token(self, tok: TokenRec) -> None: ...
    async def get_token(self, token_hash: str) -> TokenRec | None:
        """The token, also when expired or revoked (the caller decides)."""


class Store(Administration, Registrations, CallRecords, Histories, Tokens, Presence,
            Protocol):
    """All of storage, as the composition root opens it."""

    async def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""

    async def ping(self) -> None:
        """A round trip to the database (readiness); raises when it cannot answer."""
