"""The flows page's reads and writes: the flow of a DID or, when no DID is given, of an
internal extension of the app, through the admin service (its rules, its audit)."""

from __future__ import annotations

from typing import Any

from tongdai.admin.service import AdminService


async def save_flow(svc: AdminService, app_id: str, did: str, ext: str,
                    document: str) -> dict[str, Any]:
    if did:
        return await svc.flows.set_flow(app_id, did, document)
    return await svc.flows.set_extension_flow(app_id, ext, document)


async def flow_of(svc: AdminService, app_id: str, did: str, ext: str) -> dict[str, Any]:
    if did:
        return await svc.flows.get_flow(did, app_id)
    return await svc.flows.get_extension_flow(app_id, ext)


async def flow_tables(svc: AdminService, app_id: str | None) -> dict[str, Any]:
    """The flows page's tables: DIDs (with their flows), extension flows, queues."""
    if app_id is None:
        return {"dids": [], "flows": {}, "ext_flows": [], "queues": []}
    return {"dids": await svc.list_dids(app_id),
            "flows": {f["did"]: f for f in await svc.flows.list_flows(app_id)},
            "ext_flows": await svc.flows.list_extension_flows(app_id),
            "queues": await svc.flows.list_queues(app_id)}
