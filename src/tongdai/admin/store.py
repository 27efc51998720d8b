"""The administration tables (a ``SqlStore`` part): admin keys, operators, audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from tongdai.admin.rows import AdminKeyRow, AuditRow, OperatorRow
from tongdai.store.engine import Database, rowcount
from tongdai.store.errors import Conflict, NotFound
from tongdai.store.models import App
from tongdai.webhooks.rows import WebhookDeliveryRow, WebhookEndpointRow


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminKeyRec:
    key_id: str
    key_hash: str
    app_id: str | None
    label: str
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorRec:
    name: str
    password_hash: str
    app_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRec:
    seq: int
    at: float
    actor: str
    app_id: str | None
    action: str
    target: str
    detail: dict[str, Any]


def _key(r: AdminKeyRow) -> AdminKeyRec:
    return AdminKeyRec(key_id=r.key_id, key_hash=r.key_hash, app_id=r.app_id, label=r.label,
                       created_at=r.created_at, revoked_at=r.revoked_at)


def _operator(r: OperatorRow) -> OperatorRec:
    return OperatorRec(name=r.name, password_hash=r.password_hash, app_id=r.app_id,
                       created_at=r.created_at)


def _audit(r: AuditRow) -> AuditRec:
    return AuditRec(seq=r.seq, at=r.at, actor=r.actor, app_id=r.app_id, action=r.action,
                    target=r.target, detail=json.loads(r.detail or "{}"))


class AdminTables(Database):
    # Admin keys ---------------------------------------------------------------

    async def add_admin_key(self, key_id: str, key_hash: str, *, app_id: str | None,
                            label: str = "") -> AdminKeyRec:
        row = AdminKeyRow(key_id=key_id, key_hash=key_hash, app_id=app_id, label=label,
                          created_at=time.time(), revoked_at=None)
        async with self._write() as s:
            if app_id is not None and await s.get(App, app_id) is None:
                raise NotFound(f"app {app_id!r} does not exist")
            s.add(row)
        return _key(row)

    async def get_admin_key(self, key_id: str) -> AdminKeyRec | None:
        async with self._read() as s:
            row = await s.get(AdminKeyRow, key_id)
            return _key(row) if row else None

    async def list_admin_keys(self, app_id: str | None = None) -> Sequence[AdminKeyRec]:
        q = select(AdminKeyRow).order_by(AdminKeyRow.created_at, AdminKeyRow.key_id)
        if app_id is not None:
            q = q.where(AdminKeyRow.app_id == app_id)
        async with self._read() as s:
            return [_key(r) for r in await s.scalars(q)]

    async def revoke_admin_key(self, key_id: str, *, app_id: str | None = None) -> AdminKeyRec:
        async with self._write() as s:
            row = await s.get(AdminKeyRow, key_id)
            if row is None or (app_id is not None and row.app_id != app_id):
                raise NotFound(f"admin key {key_id!r} does not exist (see tongdai admin-key "
                               "list)")
            if row.revoked_at is None:
                row.revoked_at = time.time()
            return _key(row)

    # Operators ----------------------------------------------------------------

    async def add_operator(self, name: str, password_hash: str, *,
                           app_id: str | None) -> OperatorRec:
        row = OperatorRow(name=name, password_hash=password_hash, app_id=app_id,
                          created_at=time.time())
        async with self._write() as s:
            if app_id is not None and await s.get(App, app_id) is None:
                raise NotFound(f"app {app_id!r} does not exist")
            if await s.get(OperatorRow, name) is not None:
                raise Conflict(f"operator {name!r} already exists")
            s.add(row)
        return _operator(row)

    async def get_operator(self, name: str) -> OperatorRec | None:
        async with self._read() as s:
            row = await s.get(OperatorRow, name)
            return _operator(row) if row else None

    async def list_operators(self, app_id: str | None = None) -> Sequence[OperatorRec]:
        q = select(OperatorRow).order_by(OperatorRow.name)
        if app_id is not None:
            q = q.where(OperatorRow.app_id == app_id)
        async with self._read() as s:
            return [_operator(r) for r in await s.scalars(q)]

    async def set_operator_password(self, name: str, password_hash: str) -> OperatorRec:
        async with self._write() as s:
            result = await s.execute(update(OperatorRow).where(OperatorRow.name == name)
                                     .values(password_hash=password_hash))
            if not rowcount(result):
                raise NotFound(f"operator {name!r} does not exist")
            row = await s.get(OperatorRow, name)
            assert row is not None
            return _operator(row)

    async def remove_operator(self, name: str, *, app_id: str | None = None) -> None:
        q = delete(OperatorRow).where(OperatorRow.name == name)
        if app_id is not None:
            q = q.where(OperatorRow.app_id == app_id)
        async with self._write() as s:
            if not rowcount(await s.execute(q)):
                raise NotFound(f"operator {name!r} does not exist")

    # Audit log ----------------------------------------------------------------

    async def add_audit(self, *, actor: str, app_id: str | None, action: str, target: str,
                        detail: dict[str, Any], at: float) -> None:
        async with self._write() as s:
            s.add(AuditRow(at=at, actor=actor[:100], app_id=app_id, action=action,
                           target=target[:255], detail=json.dumps(detail, ensure_ascii=False)))

    async def list_audit(self, *, app_id: str | None = None, limit: int = 100,
                         before: int | None = None) -> Sequence[AuditRec]:
        """Newest first; ``before``: only entries older than that ``seq``."""
        q = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
        if app_id is not None:
            q = q.where(AuditRow.app_id == app_id)
        if before is not None:
            q = q.where(AuditRow.seq < before)
        async with self._read() as s:
            return [_audit(r) for r in await s.scalars(q)]

    # Lookups the tenant checks need ---------------------------------------------

    async def delivery_app(self, delivery_id: str) -> str | None:
        """The app whose webhook a delivery belongs to (None: no such delivery)."""
        async with self._read() as s:
            return await s.scalar(
                select(WebhookEndpointRow.app_id)
                .join(WebhookDeliveryRow,
                      WebhookDeliveryRow.endpoint_id == WebhookEndpointRow.endpoint_id)
                .where(WebhookDeliveryRow.delivery_id == delivery_id))
