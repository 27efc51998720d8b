"""The admin service's part for call flows, queues and agents (``AdminService.flows``):
the same rules for the CLI (``tongdai flow|queue|agent``) and the admin API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from tongdai.flows import check
from tongdai.flows.document import Flow, FlowError, load
from tongdai.flows.store import FlowRec, QueueRec
from tongdai.media.prompts import PromptLibrary
from tongdai.store.errors import Invalid, NotFound

if TYPE_CHECKING:
    from tongdai.admin.service import AdminService


def flow_view(f: FlowRec) -> dict[str, Any]:
    where = {"extension": f.extension} if f.extension else {"did": f.did_number}
    return {"app_id": f.app_id, **where, "name": f.name, "version": f.version,
            "updated_at": f.updated_at}


def queue_view(q: QueueRec) -> dict[str, Any]:
    return {**asdict(q), "agents": list(q.agents)}


def _refused(exc: FlowError) -> Invalid:
    return Invalid(f"flow refused: {exc}")


class FlowAdmin:
    def __init__(self, svc: AdminService) -> None:
        self.svc = svc
        self.store = svc.store

    def _prompts(self, app_id: str, flow: Flow) -> None:
        check.prompts(flow, PromptLibrary(self.svc.settings.prompts_dir).names(app_id))

    async def set_flow(self, app_id: str, did: str, document: str) -> dict[str, Any]:
        """Attach (or replace) the flow of one of the app's DIDs; refused with the path
        of its bad node."""
        await self.svc.scoped(app_id)
        try:
            self._prompts(app_id, load(document))
            rec = await self.store.set_flow(app_id, did, document)
        except FlowError as exc:
            raise _refused(exc) from None
        await self.svc.audit("flow.set", app_id, rec.did_number, version=rec.version)
        return flow_view(rec)

    async def check_flow(self, document: str, app_id: str | None = None) -> dict[str, Any]:
        if app_id is not None:
            await self.svc.scoped(app_id)
        try:
            flow = load(document) if app_id is None else await self.store.check_flow(
                app_id, document)
            if app_id is not None:
                self._prompts(app_id, flow)
        except FlowError as exc:
            raise _refused(exc) from None
        return {"ok": True, "nodes": sorted(flow.nodes), "queues": sorted(flow.refs.queues),
                "devices": sorted(flow.refs.devices), "prompts": sorted(flow.refs.prompts)}

    async def get_flow(self, did: str, app_id: str | None = None) -> dict[str, Any]:
        rec = await self.store.get_flow(did)
        owner = app_id if app_id is not None else self.svc.scope
        if rec is None or (owner is not None and rec.app_id != owner) or (
                self.svc.scope is not None and rec.app_id != self.svc.scope):
            raise NotFound(f"DID {did} has no flow")
        return {**flow_view(rec), "document": rec.document}

    async def list_flows(self, app_id: str | None = None) -> list[dict[str, Any]]:
        scope = await self.svc.listing(app_id) if self.svc.scope is not None else app_id
        return [flow_view(f) for f in await self.store.list_flows(scope)]

    async def remove_flow(self, app_id: str, did: str) -> dict[str, Any]:
        await self.store.remove_flow(await self.svc.scoped(app_id), did)
        await self.svc.audit("flow.removed", app_id, did)
        return {"did": did, "removed": True}

    async def set_extension_flow(self, app_id: str, extension: str,
                                 document: str) -> dict[str, Any]:
        """Attach (or replace) the flow a device of the app enters by dialling
        ``extension``; refused as ``set_flow`` refuses."""
        await self.svc.scoped(app_id)
        try:
            self._prompts(app_id, load(document))
            rec = await self.store.set_extension_flow(app_id, extension, document)
        except FlowError as exc:
            raise _refused(exc) from None
        await self.svc.audit("flow.set", app_id, f"ext:{rec.extension}", version=rec.version)
        return flow_view(rec)

    async def get_extension_flow(self, app_id: str, extension: str) -> dict[str, Any]:
        rec = await self.store.get_extension_flow(await self.svc.scoped(app_id), extension)
        if rec is None:
            raise NotFound(f"extension {extension} has no flow")
        return {**flow_view(rec), "document": rec.document}

    async def list_extension_flows(self, app_id: str | None = None) -> list[dict[str, Any]]:
        scope = await self.svc.listing(app_id) if self.svc.scope is not None else app_id
        return [flow_view(f) for f in await self.store.list_extension_flows(scope)]

    async def remove_extension_flow(self, app_id: str, extension: str) -> dict[str, Any]:
        await self.store.remove_extension_flow(await self.svc.scoped(app_id), extension)
        await self.svc.audit("flow.removed", app_id, f"ext:{extension}")
        return {"extension": extension, "removed": True}

    async def add_queue(self, app_id: str, name: str, agents: Sequence[str] | None, *,
                        strategy: str | None = None, max_wait: int | None = None,
                        max_length: int | None = None, ring_timeout: int | None = None,
                        wrapup: int | None = None) -> dict[str, Any]:
        if agents is None:
            raise Invalid("a queue needs --agents (comma-separated devices)")
        await self.svc.scoped(app_id)
        rec = _changed(QueueRec(app_id=app_id, name=name, agents=()), agents=agents,
                       strategy=strategy, max_wait=max_wait, max_length=max_length,
                       ring_timeout=ring_timeout, wrapup=wrapup)
        q = await self.store.add_queue(rec)
        await self.svc.audit("queue.added", app_id, name, agents=list(q.agents))
        return queue_view(q)

    async def update_queue(self, app_id: str, name: str, *,
                           agents: Sequence[str] | None = None, strategy: str | None = None,
                           max_wait: int | None = None, max_length: int | None = None,
                           ring_timeout: int | None = None, wrapup: int | None = None
                           ) -> dict[str, Any]:
        old = await self.store.get_queue(await self.svc.scoped(app_id), name)
        if old is None:
            raise NotFound(f"queue {name!r} does not exist")
        q = await self.store.update_queue(_changed(
            old, agents=agents, strategy=strategy, max_wait=max_wait,
            max_length=max_length, ring_timeout=ring_timeout, wrapup=wrapup))
        await self.svc.audit("queue.updated", app_id, name, agents=list(q.agents))
        return queue_view(q)

    async def list_queues(self, app_id: str | None = None) -> list[dict[str, Any]]:
        scope = await self.svc.listing(app_id) if self.svc.scope is not None else app_id
        return [queue_view(q) for q in await self.store.list_queues(scope)]

    async def queue_status(self, app_id: str) -> list[dict[str, Any]]:
        """Each queue of the app with its waiting callers and its agents' states, as
        the running server has them (``waiting`` None where no server runs here)."""
        app = await self.svc.scoped(app_id)
        if self.svc.scope is None:
            app = await self.svc.listing(app_id) or app_id
        probe = self.svc.queue_probe
        paused = await self.store.paused_agents(app)
        out = []
        for q in await self.store.list_queues(app):
            out.append({
                "name": q.name, "strategy": q.strategy,
                "waiting": probe.waiting(app, q.name) if probe is not None else None,
                "agents": [{"sip_user": a, "state": probe.agent_state(a, paused)
                            if probe is not None else ("paused" if a in paused else None)}
                           for a in q.agents]})
        return out

    async def remove_queue(self, app_id: str, name: str) -> dict[str, Any]:
        await self.store.remove_queue(await self.svc.scoped(app_id), name)
        await self.svc.audit("queue.removed", app_id, name)
        return {"name": name, "removed": True}

    async def pause_agent(self, app_id: str, sip_user: str, paused: bool) -> dict[str, Any]:
        await self.store.pause_agent(await self.svc.scoped(app_id), sip_user, paused)
        await self.svc.audit("agent.paused" if paused else "agent.unpaused", app_id, sip_user)
        return {"sip_user": sip_user, "paused": paused}


def _changed(base: QueueRec, *, agents: Sequence[str] | None, strategy: str | None,
             max_wait: int | None, max_length: int | None, ring_timeout: int | None,
             wrapup: int | None) -> QueueRec:
    """``base`` with the values given (None keeps one)."""
    return QueueRec(
        app_id=base.app_id, name=base.name,
        agents=tuple(a.strip() for a in agents if a.strip()) if agents is not None
        else base.agents,
        strategy=strategy if strategy is not None else base.strategy,
        max_wait=max_wait if max_wait is not None else base.max_wait,
        max_length=max_length if max_length is not None else base.max_length,
        ring_timeout=ring_timeout if ring_timeout is not None else base.ring_timeout,
        wrapup=wrapup if wrapup is not None else base.wrapup)
