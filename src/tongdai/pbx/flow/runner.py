"""One call's flow, node by node, on the caller's leg (``LegMedia``).

The runner is the async half of a flow call: it plays prompts, waits for digits and
for queue turns, and tells the pure core (``b2bua/flow_call.py``) whom to ring with
``FlowDial``, awaiting the ``FlowDialled`` answer. Once someone answers, the relay
bridges the two legs and the runner is done; the call goes on in the core.

Nodes: ``play`` (not interrupted by digits), ``menu`` (prompt interrupted by the first
digit, then ``timeout`` seconds for one; an invalid digit plays ``invalid_prompt``;
``retries`` more tries; then ``on_timeout`` or ``on_invalid``, by what happened last,
or a hang-up), ``device``, ``ring_group`` (all members at once, or one after another
each for ``timeout``), ``queue`` (``acd.py``, with music on hold), ``voicemail``
(prompt, beep, recording), ``time``, ``number``, ``hangup`` and ``goto``. A node
without a next step hangs up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from tongdai import logs
from tongdai.flows import document as d
from tongdai.media.engine import LegMedia
from tongdai.media.prompts import PromptLibrary
from tongdai.pbx.b2bua.flow_events import (
    Dialee,
    FlowCommand,
    FlowDial,
    FlowHangup,
    FlowNote,
    StartFlow,
)
from tongdai.pbx.flow.acd import Acd
from tongdai.pbx.flow.directory import FlowDirectory
from tongdai.pbx.flow.targets import Targets

log = logging.getLogger("tongdai.flows")

# A queue's caller whose agents did not answer waits this long before they (or others)
# ring again: a declining phone is not rung again at once, and an agent that cannot be
# reached is not tried in a busy loop.
RETRY_PAUSE = 2.0
BEEP = "beep"
HOLD = "hold"
RINGBACK = "ringback"


class Bridged:
    """The flow's step that connected the caller to someone: nothing follows."""


BRIDGED = Bridged()
Step = d.Node | Bridged | None


class Services(Protocol):
    """What a run needs around it (``runtime.FlowRuntime``)."""

    feed: Callable[[FlowCommand], None]
    prompts: PromptLibrary
    targets: Targets
    flows: FlowDirectory
    acd: Acd
    timezone: ZoneInfo
    wall: Callable[[], float]


class FlowRun:
    def __init__(self, rt: Services, start: StartFlow, leg: LegMedia) -> None:
        self.rt = rt
        self.start = start
        self.call_id = start.call_id
        self.app_id = start.app_id
        self.leg = leg
        self.wrapup = 0.0  # the queue's wrap-up for the agent who answered
        self.retry_pause = RETRY_PAUSE
        self._dial: asyncio.Future[str | None] | None = None
        self.task: asyncio.Task[None] | None = None

    async def main(self) -> None:
        node: Step = self.start.flow.start
        try:
            while isinstance(node, d.Node):
                node = await self.step(node)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: its flow failed", self.call_id)
            node = None
        if node is None:
            self.rt.feed(FlowHangup(call_id=self.call_id))

    def dialled(self, answered: str | None) -> None:
        if self._dial is not None and not self._dial.done():
            self._dial.set_result(answered)

    async def step(self, node: d.Node) -> Step:
        logs.event(log, "flow.node", level=logging.DEBUG, call_id=self.call_id,
                   node=type(node).__name__.lower())
        match node:
            case d.Play():
                await self._play(node.prompt, interrupt=False)
                return node.next
            case d.Menu():
                return await self._menu(node)
            case d.Device():
                found = await self.rt.targets.device(self.app_id, node.name)
                if found is not None and await self._ring((found,), node.timeout):
                    return BRIDGED
                return node.next
            case d.RingGroup():
                return await self._ring_group(node)
            case d.Queue():
                return await self._queue(node)
            case d.Voicemail():
                await self._voicemail(node)
                return d.Hangup()
            case d.Time():
                return node.open if self._open(node) else node.closed
            case d.Number():
                out = await self.rt.targets.number(self.app_id, node.number)
                if out is not None and await self._ring((out,), node.timeout):
                    return BRIDGED
                return node.next
            case d.Goto():
                return self.start.flow.nodes[node.target]
        return None  # Hangup

    async def _play(self, name: str, *, interrupt: bool) -> str | None:
        prompt = self.rt.prompts.get(self.app_id, name)
        if prompt is None:
            logs.event(log, "flow.no_prompt", level=logging.WARNING, call_id=self.call_id,
                       prompt=name)
            return None
        return await self.leg.play(prompt, stop_on_dtmf=interrupt)

    async def _menu(self, m: d.Menu) -> Step:
        last = "timeout"
        for _ in range(m.retries + 1):
            digit = await self._play(m.prompt, interrupt=True)
            if digit is None:
                digit = await self.leg.collect(max_digits=1, timeout=m.timeout) or None
            if digit is None:
                last = "timeout"
                continue
            if digit in m.options:
                return m.options[digit]
            last = "invalid"
            await self._play(m.invalid_prompt, interrupt=False)
        return m.on_timeout if last == "timeout" else m.on_invalid

    async def _ring(self, dialees: tuple[Dialee, ...], ring_for: float, *,
                    tone: str | None = RINGBACK) -> str | None:
        """Ring ``dialees`` at once; who answered (the call is bridged), or None. The
        caller hears ``tone`` meanwhile (a queue's caller keeps its music instead)."""
        if not dialees:
            return None
        ringback = self.rt.prompts.get(self.app_id, tone) if tone else None
        if ringback is not None:
            self.leg.start_music(ringback)
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._dial = fut
        agents = [d.name for d in dialees if d.trunk is None]
        self.rt.acd.ringing(agents)  # one state for every queue and ring group
        try:
            self.rt.feed(FlowDial(call_id=self.call_id, dialees=dialees, timeout=ring_for))
            answered = await fut
        finally:
            self._dial = None
            self.rt.acd.ringing_over(agents)
        if ringback is not None and not answered:
            self.leg.stop_music()
        return answered

    async def _free(self, names: tuple[str, ...]) -> tuple[Dialee, ...]:
        """The members that can be rung: registered, in no other call, and not ringing
        for another caller (a queue's or a ring group's)."""
        found = [await self.rt.targets.device(self.app_id, name) for name in names]
        # Checked after the look-ups, with no wait before ``_ring`` marks them ringing.
        engaged = self.rt.acd.engaged()
        return tuple(f for f in found if f is not None and f.name not in engaged)

    async def _ring_group(self, g: d.RingGroup) -> Step:
        if g.strategy == "simultaneous":
            if await self._ring(await self._free(g.members), g.timeout):
                return BRIDGED
            return g.next
        for member in g.members:
            if await self._ring(await self._free((member,)), g.timeout):
                return BRIDGED
        return g.next

    async def _queue(self, node: d.Queue) -> Step:
        rt = self.rt
        q = await rt.flows.queue(self.app_id, node.name)
        if q is None:
            logs.event(log, "flow.no_queue", level=logging.WARNING, call_id=self.call_id,
                       queue=node.name)
            return None
        if q.max_length and rt.acd.length(q) >= q.max_length:
            logs.event(log, "flow.queue_full", call_id=self.call_id, queue=q.name)
            return node.on_full
        w = rt.acd.join(q, self.call_id)
        logs.event(log, "flow.queued", call_id=self.call_id, queue=q.name,
                   position=rt.acd.length(q))
        rt.feed(FlowNote(call_id=self.call_id, kind="queued", data={"queue": q.name}))
        hold = rt.prompts.get(self.app_id, HOLD)
        if hold is not None:
            self.leg.start_music(hold)
        deadline = w.joined + q.max_wait if q.max_wait else None
        try:
            while True:
                agents = await rt.acd.agents_for(q, w, await rt.flows.paused(self.app_id),
                                                 deadline)
                if agents is None:
                    self.leg.stop_music()
                    logs.event(log, "flow.queue_timeout", call_id=self.call_id, queue=q.name)
                    return node.on_timeout
                dialees = []
                for agent in agents:
                    found = await rt.targets.device(self.app_id, agent)
                    if found is not None:
                        dialees.append(found)
                try:
                    answered = await self._ring(tuple(dialees), q.ring_timeout, tone=None)
                finally:
                    rt.acd.rung(w, agents)
                if answered:
                    self.wrapup = q.wrapup
                    return BRIDGED
                pause = self.retry_pause
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - rt.wall()))
                await asyncio.sleep(pause)
        finally:
            rt.acd.leave(q, w)

    async def _voicemail(self, v: d.Voicemail) -> None:
        if v.prompt:
            await self._play(v.prompt, interrupt=False)
        await self._play(BEEP, interrupt=False)
        box = await self.rt.targets.sip_user(self.app_id, v.box) or v.box
        self.rt.feed(FlowNote(call_id=self.call_id, kind="recording", data={}))
        name = await self.leg.record(app_id=self.app_id, limit=v.limit)
        self.rt.feed(FlowNote(call_id=self.call_id, kind="voicemail",
                              data={"box": box, "recording": name}, recording=name))

    def _open(self, t: d.Time) -> bool:
        now = datetime.fromtimestamp(self.rt.wall(), self.rt.timezone)
        if now.date().isoformat() in t.holidays:
            return False
        minute = now.hour * 60 + now.minute
        return any(lo <= minute < hi for lo, hi in t.hours.get(now.weekday(), ()))
