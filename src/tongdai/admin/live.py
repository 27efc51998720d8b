"""The calls in progress and the queues, as the call core and the ACD of this process
hold them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tongdai.admin.service import LiveCallSource
from tongdai.flows.store import QueueRec
from tongdai.pbx.b2bua import B2bua
from tongdai.pbx.flow.acd import Acd
from tongdai.pbx.flow.runtime import FlowRuntime


def live_calls(core: B2bua) -> LiveCallSource:
    """A source of the core's unfinished calls: parties, state and times (read on the
    event loop that runs the core, so nothing changes under it)."""

    def snapshot() -> list[dict[str, Any]]:
        out = []
        for c in list(core.calls.values()):
            if c.finished:
                continue
            out.append({
                "call_id": c.call_id, "app_id": c.app_id,
                "state": "talking" if c.answered_at is not None else "ringing",
                "direction": c.direction, "class": c.klass,
                "caller": c.caller, "callee": c.callee, "did_number": c.did_number,
                "devices": list(c.devices), "started_at": c.started_at,
                "answered_at": c.answered_at,
            })
        return sorted(out, key=lambda c: (c["started_at"], c["call_id"]))

    return snapshot


class AcdProbe:
    """Queue state as the running server's ACD holds it (``QueueProbe``)."""

    def __init__(self, acd: Acd) -> None:
        self.acd = acd

    def waiting(self, app_id: str, name: str) -> int:
        return self.acd.length(QueueRec(app_id=app_id, name=name, agents=()))

    def agent_state(self, sip_user: str, paused: Collection[str]) -> str:
        return self.acd.state(sip_user, paused)


def queue_probe(runtime: FlowRuntime | None) -> AcdProbe | None:
    return AcdProbe(runtime.acd) if runtime is not None else None
