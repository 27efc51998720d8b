"""Flows, queues and paused agents as a running server reads them: loaded once per
configuration version (``DeviceDirectory.version``, polled every second), so a change
made with the CLI applies within about a second, and a call to a DID without a flow
costs one dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from tongdai.flows.document import FlowError, load
from tongdai.flows.store import FlowRec, QueueRec
from tongdai.pbx.b2bua.flow_events import RunFlow
from tongdai.pbx.directory import DeviceDirectory

log = logging.getLogger("tongdai.flows")


class FlowSource(Protocol):
    async def list_flows(self, app_id: str | None = None) -> Sequence[FlowRec]: ...
    async def list_extension_flows(self, app_id: str | None = None
                                   ) -> Sequence[FlowRec]: ...
    async def list_queues(self, app_id: str | None = None) -> Sequence[QueueRec]: ...
    async def paused_agents(self, app_id: str) -> frozenset[str]: ...


class FlowDirectory:
    def __init__(self, *, store: FlowSource, directory: DeviceDirectory) -> None:
        self.store = store
        self.directory = directory
        self._version: int | None = -1
        self._flows: dict[str, RunFlow] = {}
        self._queues: dict[tuple[str, str], QueueRec] = {}
        self._paused: dict[str, frozenset[str]] = {}
        # One reload at a time: the calls that arrive while it reads wait for it
        # instead of each reading every flow and queue again (a burst of calls after
        # a start or a change made dozens of the same reads at once).
        self._reloading = asyncio.Lock()

    async def _fresh(self) -> None:
        if self._current():
            return
        async with self._reloading:
            if not self._current():  # not done meanwhile by the reload we waited for
                await self._reload(self.directory.version)

    def _current(self) -> bool:
        version = self.directory.version
        return version == self._version and version is not None

    async def _reload(self, version: int | None) -> None:
        flows: dict[str, RunFlow] = {}
        for rec in [*await self.store.list_flows(), *await self.store.list_extension_flows()]:
            key = _key(rec.app_id, rec.extension) if rec.extension else rec.did_number
            known = self._flows.get(key)
            if known is not None and known.version == rec.version:
                flows[key] = known  # unchanged: not parsed again
                continue
            try:
                flows[key] = RunFlow(flow=load(rec.document), version=rec.version)
            except FlowError as exc:  # stored before a stricter check: not run
                log.warning("flow of %s cannot run: %s", rec.name, exc)
        self._flows = flows
        self._queues = {(q.app_id, q.name): q for q in await self.store.list_queues()}
        self._paused = {}
        self._version = version

    async def flow(self, did_number: str) -> RunFlow | None:
        if self._version != self.directory.version or self._version is None:
            await self._fresh()
        return self._flows.get(did_number)

    async def extension(self, app_id: str, extension: str) -> RunFlow | None:
        """The flow a device of ``app_id`` dialling ``extension`` enters, if any."""
        return await self.flow(_key(app_id, extension))

    async def queue(self, app_id: str, name: str) -> QueueRec | None:
        await self._fresh()
        return self._queues.get((app_id, name))

    async def paused(self, app_id: str) -> frozenset[str]:
        await self._fresh()
        got = self._paused.get(app_id)
        if got is None:
            got = self._paused[app_id] = await self.store.paused_agents(app_id)
        return got


def _key(app_id: str, extension: str) -> str:
    # Never a DID's key: a DID is digits (and a leading +) only.
    return f"{app_id}/{extension}"
