"""Queues of callers and the states of agents (automatic call distribution).

An agent is a device. Its state, worked out when it matters:

- ``offline``: no registration;
- ``paused``: ``tongdai agent pause`` (until ``unpause``);
- ``busy``: in a call (any call of tongdai: queue, ring group, internal, outbound), or
  in its wrap-up time after a queue call;
- ``ringing``: a flow rings it now (a queue, a ring group, a device node): while it
  rings for one caller, no other queue or ring group rings it;
- ``available``: none of these.

Callers are served in order of arrival: the earliest caller of a queue who is not
already ringing someone takes the next available agent(s) — all of them (``ring-all``),
the one after the last rung (``round-robin``) or the one idle longest
(``longest-idle``). An agent can be in several queues; its state is one for all. Waiters
wake on every change here, and every ``POLL`` seconds for changes made elsewhere
(registrations, calls, pauses).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from tongdai.flows.store import QueueRec

State = Literal["available", "ringing", "busy", "paused", "offline"]
POLL = 0.5


@dataclass(eq=False)
class Waiter:
    call_id: str
    joined: float
    ringing: bool = False


@dataclass(eq=False)
class _Queue:
    waiting: list[Waiter] = field(default_factory=list)
    last: str | None = None  # round-robin: the agent rung last


class Acd:
    def __init__(self, *, clock: Callable[[], float], registered: Callable[[str], bool],
                 in_call: Callable[[], Collection[str]]) -> None:
        self.clock = clock
        self.registered = registered
        self.in_call = in_call  # the devices in calls now
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._ringing: Counter[str] = Counter()  # agent → flows ringing it now
        self._wrapup: dict[str, float] = {}  # agent → end of its wrap-up
        self._idle_since: dict[str, float] = {}
        self._changed = asyncio.Event()

    def state(self, agent: str, paused: Collection[str],
              busy: Collection[str] | None = None) -> State:
        if not self.registered(agent):
            return "offline"
        if agent in paused:
            return "paused"
        if self._ringing[agent] > 0:
            return "ringing"
        if agent in (busy if busy is not None else self.in_call()) or \
                self._wrapup.get(agent, 0.0) > self.clock():
            return "busy"
        return "available"

    def length(self, q: QueueRec) -> int:
        got = self._queues.get((q.app_id, q.name))
        return len(got.waiting) if got is not None else 0

    def join(self, q: QueueRec, call_id: str) -> Waiter:
        w = Waiter(call_id, self.clock())
        self._queues.setdefault((q.app_id, q.name), _Queue()).waiting.append(w)
        return w

    def leave(self, q: QueueRec, w: Waiter) -> None:
        got = self._queues.get((q.app_id, q.name))
        if got is not None and w in got.waiting:
            got.waiting.remove(w)
            if not got.waiting:
                self._queues.pop((q.app_id, q.name), None)
            self._notify()

    async def agents_for(self, q: QueueRec, w: Waiter, paused: Collection[str],
                         deadline: float | None) -> tuple[str, ...] | None:
        """Wait for ``w``'s turn and an available agent: the agents to ring (marked
        ringing), or None when ``deadline`` passed first."""
        while True:
            picked = self._pick(q, w, paused)
            if picked:
                self._ringing.update(picked)  # reserved until ``rung``
                w.ringing = True
                self._notify()
                return picked
            wait = POLL
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    return None
                wait = min(wait, left)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    def rung(self, w: Waiter, agents: Collection[str]) -> None:
        """Ringing ``agents`` for ``w`` is over (answered or not)."""
        self.ringing_over(agents)
        w.ringing = False

    def ringing(self, agents: Collection[str]) -> None:
        """A flow rings ``agents`` now (a ring group, a device node, a queue's pick):
        no queue or ring group rings them meanwhile."""
        self._ringing.update(agents)
        self._notify()

    def ringing_over(self, agents: Collection[str]) -> None:
        self._ringing.subtract(agents)
        self._ringing = +self._ringing  # drop the agents rung by nobody now
        self._notify()

    def engaged(self) -> set[str]:
        """The devices that cannot take another flow's ringing: in a call, or ringing."""
        return {*self.in_call(), *self._ringing}

    def ended(self, agent: str, wrapup: float) -> None:
        """``agent``'s call ended: it wraps up, then is idle from now."""
        now = self.clock()
        self._idle_since[agent] = now
        if wrapup > 0:
            self._wrapup[agent] = now + wrapup
        self._notify()

    def _pick(self, q: QueueRec, w: Waiter, paused: Collection[str]) -> tuple[str, ...]:
        queue = self._queues.get((q.app_id, q.name))
        if queue is None:
            return ()
        first = next((x for x in queue.waiting if not x.ringing), None)
        if first is not w:
            return ()
        busy = self.in_call()
        free = [a for a in q.agents if self.state(a, paused, busy) == "available"]
        if not free:
            return ()
        if q.strategy == "ring-all":
            return tuple(free)
        if q.strategy == "longest-idle":
            return (min(free, key=lambda a: self._idle_since.get(a, 0.0)),)
        # round-robin: the first free agent after the one rung last, in the queue's order
        order = list(q.agents)
        start = order.index(queue.last) + 1 if queue.last in order else 0
        pick = next(a for a in order[start:] + order[:start] if a in free)
        queue.last = pick
        return (pick,)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
