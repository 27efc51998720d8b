"""Benchmark: what a call flow costs a DID call that has none, and one that has one
(and a device's call to an extension, which asks the same directory).

    python bench/flow_lookup_bench.py [--flows 1000] [--n 200000]

Routing an inbound DID call asks the flow directory for the DID's flow
(``pbx/flow/directory.py``): between configuration changes that is one version
comparison and one dictionary lookup. Printed per lookup, beside the anchor of a bare
``dict.get`` awaited the same way, and the cost of reloading ``--flows`` flows (parse
and check each document) the first time, and after a change that left them as they
were (only a changed flow's version is parsed again).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from tongdai.flows.store import FlowRec, QueueRec
from tongdai.pbx.flow.directory import FlowDirectory

DOC = """\
menu:
  prompt: welcome
  options:
    "1": {queue: sales}
    "2": {device: alice}
    "3": {ring_group: {members: [alice, bob], strategy: simultaneous, timeout: 20}}
  on_timeout: {voicemail: alice}
"""


class Store:
    def __init__(self, flows: int) -> None:
        self.flows = [FlowRec(app_id="app", did_number=f"0287{i:07d}", document=DOC,
                              version=1, updated_at=0.0) for i in range(flows)]

    async def list_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        return self.flows

    async def list_extension_flows(self, app_id: str | None = None) -> Sequence[FlowRec]:
        return [FlowRec(app_id="app", did_number="", extension="300", document=DOC,
                        version=1, updated_at=0.0)]

    async def list_queues(self, app_id: str | None = None) -> Sequence[QueueRec]:
        return [QueueRec(app_id="app", name="sales", agents=("alice", "bob"))]

    async def paused_agents(self, app_id: str) -> frozenset[str]:
        return frozenset()


class Versions:
    version: int | None = 1


async def _anchor(table: dict[str, object], did: str) -> object:
    return table.get(did)


async def main(flows: int, n: int) -> None:
    versions = Versions()
    directory = FlowDirectory(store=Store(flows), directory=versions)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    await directory.flow("x")
    reload_ms = (time.perf_counter() - t0) * 1000
    table: dict[str, object] = {}
    for label, did in (("no flow", "0901234567"), ("with a flow", "02870000007")):
        t0 = time.perf_counter()
        for _ in range(n):
            await directory.flow(did)
        per = (time.perf_counter() - t0) / n * 1e9
        t0 = time.perf_counter()
        for _ in range(n):
            await _anchor(table, did)
        anchor = (time.perf_counter() - t0) / n * 1e9
        print(f"lookup, DID {label:12s} {per:7.0f} ns   (anchor: awaited dict.get "
              f"{anchor:5.0f} ns)")
    t0 = time.perf_counter()
    for _ in range(n):
        await directory.extension("app", "101")  # a device's extension: no flow
    per = (time.perf_counter() - t0) / n * 1e9
    print(f"lookup, extension without a flow {per:4.0f} ns   (a device call pays this)")
    print(f"first load: {flows} flows parsed in {reload_ms:.1f} ms "
          f"({reload_ms / max(flows, 1) * 1000:.0f} us per flow)")
    versions.version = 2  # another change (a device added): the flows are unchanged
    t0 = time.perf_counter()
    await directory.flow("x")
    print(f"reload after an unrelated configuration change: "
          f"{(time.perf_counter() - t0) * 1000:.2f} ms (no flow parsed again)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    asyncio.run(main(args.flows, args.n))
