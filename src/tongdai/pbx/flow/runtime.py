"""The driver's side of flow calls: it starts a ``FlowRun`` when the core answered a
caller for a flow, and performs the core's flow actions on the call's media.

Why a runner beside the driver rather than in the core: a flow waits — on a prompt,
on a digit, on a queue turn — and waiting is asyncio's. The core keeps every SIP
decision (answer, forks, first answer wins, CDR); the runner only issues commands to
it, so the core stays pure and testable on the fake-clock network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from tongdai.media.dtmf import parse_info
from tongdai.media.engine import MediaSession
from tongdai.media.prompts import PromptLibrary
from tongdai.pbx.b2bua.flow_events import (
    FlowAction,
    FlowCommand,
    FlowDialled,
    FlowHold,
    FlowInfo,
    FlowOver,
    FlowStop,
    StartFlow,
)
from tongdai.pbx.b2bua.model import Call
from tongdai.pbx.flow.acd import Acd
from tongdai.pbx.flow.directory import FlowDirectory
from tongdai.pbx.flow.runner import FlowRun
from tongdai.pbx.flow.targets import Targets

log = logging.getLogger("tongdai.flows")

# How long the end of a call waits for its runner (a voicemail being written).
CLOSE_WAIT = 5.0


def _unbound(cmd: FlowCommand) -> None:
    raise RuntimeError("FlowRuntime.feed is set by the call driver")


class FlowRuntime:
    def __init__(self, *, prompts: PromptLibrary, targets: Targets, flows: FlowDirectory,
                 acd: Acd, timezone: str, wall: Callable[[], float]) -> None:
        self.prompts = prompts
        self.targets = targets
        self.flows = flows
        self.acd = acd
        self.timezone = ZoneInfo(timezone)
        self.wall = wall
        self.feed: Callable[[FlowCommand], None] = _unbound
        self.runs: dict[str, FlowRun] = {}

    def perform(self, action: FlowAction, session: MediaSession | None) -> None:
        run = self.runs.get(action.call_id)
        match action:
            case StartFlow():
                if session is None:
                    return
                leg = session.leg_media("a", action.media.codec)
                leg.set_dtmf_pt(action.media.dtmf_pt)
                run = self.runs[action.call_id] = FlowRun(self, action, leg)
                run.task = asyncio.get_running_loop().create_task(
                    run.main(), name=f"flow-{action.call_id}")
            case FlowDialled(answered=answered):
                if answered and session is not None:
                    session.bridge()  # before the recording starts: both voices
                if run is not None:
                    run.dialled(answered)
            case FlowInfo(content_type=ctype, body=body):
                digit = parse_info(ctype, body)
                if digit is not None and run is not None:
                    run.leg.dtmf(digit)
            case FlowStop():
                if run is not None:
                    run.leg.stop()
            case FlowHold(held=held):
                if run is not None:
                    run.leg.hold(held)
            case FlowOver(agent=agent):
                if run is not None:
                    self.runs.pop(action.call_id, None)
                    if run.task is not None and not run.task.done():
                        run.task.cancel()
                if agent is not None:
                    self.acd.ended(agent, run.wrapup if run is not None else 0.0)

    async def close(self, call_id: str) -> None:
        """The call's media is about to close: let its runner finish first."""
        run = self.runs.pop(call_id, None)
        if run is None or run.task is None or run.task.done():
            return
        run.leg.stop()
        done, _ = await asyncio.wait({run.task}, timeout=CLOSE_WAIT)
        if not done:
            run.task.cancel()


def devices_in_calls(calls: Iterable[Call]) -> set[str]:
    """The devices in calls now (ringing or talking): agents that are busy."""
    return {d for call in calls if not call.finished for d in call.devices}
