"""The flows a running server reads are loaded once per configuration version, even
when a burst of calls asks for them at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from tongdai.flows.store import FlowRec, QueueRec
from tongdai.pbx.directory import DeviceDirectory
from tongdai.pbx.flow.directory import FlowDirectory
from tongdai.store.sql import SqlStore


class CountedReads:
    """The store's flow reads, counted."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.reads = 0

    async def list_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        self.reads += 1
        return await self.store.list_flows(app_id)

    async def list_extension_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        return await self.store.list_extension_flows(app_id)

    async def list_queues(self, app_id: str | None = None) -> Sequence[QueueRec]:
        return await self.store.list_queues(app_id)

    async def paused_agents(self, app_id: str) -> frozenset[str]:
        return await self.store.paused_agents(app_id)


async def test_a_burst_of_calls_reads_the_flows_once(store: SqlStore) -> None:
    directory = DeviceDirectory(store=store, clock=time.time)
    await directory.check()
    counted = CountedReads(store)
    flows = FlowDirectory(store=counted, directory=directory)

    found = await asyncio.gather(*(flows.extension("app", "100") for _ in range(20)))
    assert found == [None] * 20
    assert counted.reads == 1

    await store.create_app("another")  # a change of configuration
    assert await directory.check() is True
    await asyncio.gather(*(flows.flow("+15550100") for _ in range(20)))
    assert counted.reads == 2
