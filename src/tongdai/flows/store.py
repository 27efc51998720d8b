"""Flows, queues and paused agents in the database (a ``SqlStore`` part).

Every change is a configuration write (``_config_write``): running servers see it
within a poll of the configuration version. A flow is checked against the app's
devices and queues in the transaction that stores it, and a queue a flow names
cannot be removed (nor a device a flow or a queue names, ``device_users``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tongdai.flows import check
from tongdai.flows.document import Flow, FlowError, load
from tongdai.flows.rows import ExtensionFlowRow, FlowRow, PausedAgentRow, QueueRow
from tongdai.store import validate
from tongdai.store.engine import Database
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.models import App, Device, Did

STRATEGIES = ("ring-all", "round-robin", "longest-idle")
MAX_AGENTS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRec:
    app_id: str
    did_number: str  # "" for an extension's flow
    document: str
    version: int
    updated_at: float
    extension: str = ""  # the internal extension it is attached to, instead of a DID

    @property
    def name(self) -> str:
        return f"extension {self.extension}" if self.extension else f"did {self.did_number}"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRec:
    app_id: str
    name: str
    agents: tuple[str, ...]
    strategy: str = "ring-all"
    max_wait: int = 0  # seconds; 0: no limit
    max_length: int = 0
    ring_timeout: int = 15
    wrapup: int = 5


def _flow_rec(r: FlowRow) -> FlowRec:
    return FlowRec(app_id=r.app_id, did_number=r.did_number, document=r.document,
                   version=r.version, updated_at=r.updated_at)


def _extension_rec(r: ExtensionFlowRow) -> FlowRec:
    return FlowRec(app_id=r.app_id, did_number="", extension=r.extension,
                   document=r.document, version=r.version, updated_at=r.updated_at)


def _extension(value: str) -> str:
    ext = validate.extension(value)
    if ext is None:
        raise Invalid("an extension is 2 to 8 digits")
    return ext


def _queue_rec(r: QueueRow) -> QueueRec:
    return QueueRec(app_id=r.app_id, name=r.name,
                    agents=tuple(a for a in r.agents.split(",") if a), strategy=r.strategy,
                    max_wait=r.max_wait, max_length=r.max_length, ring_timeout=r.ring_timeout,
                    wrapup=r.wrapup)


class FlowTables(Database):
    # Flows --------------------------------------------------------------------

    async def set_flow(self, app_id: str, did_number: str, document: str) -> FlowRec:
        """Attach (or replace) the flow of one of the app's DIDs; ``FlowError`` when it
        is malformed or names what the app lacks."""
        flow = load(document)
        key = validate.did_number(did_number)
        async with self._config_write() as s:
            did = await s.get(Did, key)
            if did is None or did.app_id != app_id:
                raise NotFound(f"DID {key} does not exist in this app")
            await self._check(s, app_id, flow)
            row = await s.get(FlowRow, key)
            now = time.time()
            if row is None:
                row = FlowRow(did_number=key, app_id=app_id, document=document, version=1,
                              updated_at=now)
                s.add(row)
            else:
                row.document, row.version, row.updated_at = document, row.version + 1, now
            await s.flush()
            return _flow_rec(row)

    async def check_flow(self, app_id: str, document: str) -> Flow:
        flow = load(document)
        async with self._read() as s:
            await self._check(s, app_id, flow)
        return flow

    async def _check(self, s: AsyncSession, app_id: str, flow: Flow) -> None:
        if await s.get(App, app_id) is None:
            raise NotFound(f"app {app_id!r} does not exist")
        devs = await s.execute(select(Device.sip_user, Device.extension)
                               .where(Device.app_id == app_id))
        names = {n for row in devs for n in row if n}
        queues = set(await s.scalars(select(QueueRow.name).where(QueueRow.app_id == app_id)))
        check.against_app(flow, devices=names, queues=queues)

    async def get_flow(self, did_number: str) -> FlowRec | None:
        try:
            key = validate.did_number(did_number)
        except Invalid:
            return None
        async with self._read() as s:
            row = await s.get(FlowRow, key)
            return _flow_rec(row) if row is not None else None

    async def list_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        q = select(FlowRow).order_by(FlowRow.app_id, FlowRow.did_number)
        if app_id is not None:
            q = q.where(FlowRow.app_id == app_id)
        async with self._read() as s:
            return [_flow_rec(r) for r in await s.scalars(q)]

    async def remove_flow(self, app_id: str, did_number: str) -> None:
        key = validate.did_number(did_number)
        async with self._config_write() as s:
            row = await s.get(FlowRow, key)
            if row is None or row.app_id != app_id:
                raise NotFound(f"DID {key} has no flow")
            await s.delete(row)

    # Flows on extensions --------------------------------------------------------

    async def set_extension_flow(self, app_id: str, extension: str,
                                 document: str) -> FlowRec:
        """Attach (or replace) the flow a device of the app reaches by dialling
        ``extension``, which no device of the app has as its own."""
        flow = load(document)
        ext = _extension(extension)
        async with self._config_write() as s:
            await self._check(s, app_id, flow)
            taken = await s.scalar(select(Device.sip_user).where(
                Device.app_id == app_id, Device.extension == ext))
            if taken is not None:
                raise Conflict(f"extension {ext} is device {taken!r}'s")
            row = await s.get(ExtensionFlowRow, (app_id, ext))
            now = time.time()
            if row is None:
                row = ExtensionFlowRow(app_id=app_id, extension=ext, document=document,
                                       version=1, updated_at=now)
                s.add(row)
            else:
                row.document, row.version, row.updated_at = document, row.version + 1, now
            await s.flush()
            return _extension_rec(row)

    async def get_extension_flow(self, app_id: str, extension: str) -> FlowRec | None:
        async with self._read() as s:
            row = await s.get(ExtensionFlowRow, (app_id, extension))
            return _extension_rec(row) if row is not None else None

    async def list_extension_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        q = select(ExtensionFlowRow).order_by(ExtensionFlowRow.app_id,
                                              ExtensionFlowRow.extension)
        if app_id is not None:
            q = q.where(ExtensionFlowRow.app_id == app_id)
        async with self._read() as s:
            return [_extension_rec(r) for r in await s.scalars(q)]

    async def remove_extension_flow(self, app_id: str, extension: str) -> None:
        async with self._config_write() as s:
            row = await s.get(ExtensionFlowRow, (app_id, extension))
            if row is None:
                raise NotFound(f"extension {extension} has no flow")
            await s.delete(row)

    async def _flows_naming(self, s: AsyncSession, app_id: str, *, queue: str = "",
                            device: tuple[str, ...] = ()) -> str | None:
        """The name of a flow of the app (on a DID or an extension) that names
        ``queue`` or one of ``device``."""
        dids = await s.scalars(select(FlowRow).where(FlowRow.app_id == app_id)
                               .order_by(FlowRow.did_number))
        exts = await s.scalars(select(ExtensionFlowRow)
                               .where(ExtensionFlowRow.app_id == app_id)
                               .order_by(ExtensionFlowRow.extension))
        recs = [*map(_flow_rec, dids), *map(_extension_rec, exts)]
        for rec in recs:
            try:
                refs = load(rec.document).refs
            except FlowError:
                continue
            if queue in refs.queues or any(d in refs.devices for d in device if d):
                return rec.name
        return None

    async def device_users(self, s: AsyncSession, app_id: str, sip_user: str,
                           extension: str | None) -> str | None:
        """What still uses a device (a flow or a queue), to refuse its removal."""
        names = (sip_user, extension or "")
        flow = await self._flows_naming(s, app_id, device=names)
        if flow is not None:
            return f"flow {flow}"
        for q in await s.scalars(select(QueueRow).where(QueueRow.app_id == app_id)):
            if any(n in _queue_rec(q).agents for n in names if n):
                return f"queue {q.name!r}"
        return None

    # Queues -------------------------------------------------------------------

    async def add_queue(self, rec: QueueRec) -> QueueRec:
        _check_queue(rec)
        async with self._config_write() as s:
            if await s.get(App, rec.app_id) is None:
                raise NotFound(f"app {rec.app_id!r} does not exist")
            await _check_agents(s, rec)
            if await s.get(QueueRow, (rec.app_id, rec.name)) is not None:
                raise Conflict(f"queue {rec.name!r} already exists")
            s.add(QueueRow(app_id=rec.app_id, name=rec.name, agents=",".join(rec.agents),
                           strategy=rec.strategy, max_wait=rec.max_wait,
                           max_length=rec.max_length, ring_timeout=rec.ring_timeout,
                           wrapup=rec.wrapup, created_at=time.time()))
        return rec

    async def update_queue(self, rec: QueueRec) -> QueueRec:
        _check_queue(rec)
        async with self._config_write() as s:
            row = await s.get(QueueRow, (rec.app_id, rec.name))
            if row is None:
                raise NotFound(f"queue {rec.name!r} does not exist")
            await _check_agents(s, rec)
            row.agents, row.strategy = ",".join(rec.agents), rec.strategy
            row.max_wait, row.max_length = rec.max_wait, rec.max_length
            row.ring_timeout, row.wrapup = rec.ring_timeout, rec.wrapup
        return rec

    async def get_queue(self, app_id: str, name: str) -> QueueRec | None:
        async with self._read() as s:
            row = await s.get(QueueRow, (app_id, name))
            return _queue_rec(row) if row is not None else None

    async def list_queues(self, app_id: str | None = None) -> Sequence[QueueRec]:
        q = select(QueueRow).order_by(QueueRow.app_id, QueueRow.name)
        if app_id is not None:
            q = q.where(QueueRow.app_id == app_id)
        async with self._read() as s:
            return [_queue_rec(r) for r in await s.scalars(q)]

    async def remove_queue(self, app_id: str, name: str) -> None:
        async with self._config_write() as s:
            row = await s.get(QueueRow, (app_id, name))
            if row is None:
                raise NotFound(f"queue {name!r} does not exist")
            flow = await self._flows_naming(s, app_id, queue=name)
            if flow is not None:
                raise Conflict(f"flow {flow} uses queue {name!r}; change or remove it first")
            await s.delete(row)

    # Agents -------------------------------------------------------------------

    async def pause_agent(self, app_id: str, sip_user: str, paused: bool) -> None:
        async with self._config_write() as s:
            dev = await s.get(Device, sip_user)
            if dev is None or dev.app_id != app_id:
                raise NotFound(f"device {sip_user!r} does not exist")
            row = await s.get(PausedAgentRow, sip_user)
            if paused and row is None:
                s.add(PausedAgentRow(sip_user=sip_user, paused_at=time.time()))
            elif not paused and row is not None:
                await s.execute(delete(PausedAgentRow)
                                .where(PausedAgentRow.sip_user == sip_user))

    async def paused_agents(self, app_id: str) -> frozenset[str]:
        async with self._read() as s:
            users = await s.scalars(
                select(PausedAgentRow.sip_user).join(
                    Device, Device.sip_user == PausedAgentRow.sip_user)
                .where(Device.app_id == app_id))
            return frozenset(users)


def _check_queue(rec: QueueRec) -> None:
    if not rec.name or len(rec.name) > 64 or not rec.name.replace("-", "").replace(
            "_", "").isalnum():
        raise Invalid("a queue name is 1-64 letters, digits, - and _")
    if rec.strategy not in STRATEGIES:
        raise Invalid(f"strategy is one of {', '.join(STRATEGIES)}")
    if not rec.agents or len(rec.agents) > MAX_AGENTS or len(set(rec.agents)) != len(rec.agents):
        raise Invalid(f"a queue has 1 to {MAX_AGENTS} different agents")
    for value, what, hi in ((rec.max_wait, "max-wait", 86400), (rec.max_length, "max-length",
                            10000), (rec.ring_timeout, "ring-timeout", 600),
                            (rec.wrapup, "wrap-up", 3600)):
        if not 0 <= value <= hi:
            raise Invalid(f"{what} is from 0 to {hi}")
    if rec.ring_timeout < 1:
        raise Invalid("ring-timeout is at least 1 second")


async def _check_agents(s: AsyncSession, rec: QueueRec) -> None:
    for agent in rec.agents:
        dev = await s.get(Device, agent)
        if dev is None or dev.app_id != rec.app_id:
            raise NotFound(f"agent {agent!r}: no such device in this app")
