"""The flow runner node by node, on an in-memory LegMedia (digits scripted, prompts
recorded) with the core played by the test: menus (interrupting digit, timeout,
invalid, retries), ring groups, queues (order of arrival, strategies, busy, paused,
wrap-up, max wait, max length), voicemail and business hours."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.flows.test_document import EXAMPLE

from tongdai.flows.document import load
from tongdai.flows.store import QueueRec
from tongdai.media.prompts import Prompt
from tongdai.pbx.b2bua.events import Binding
from tongdai.pbx.b2bua.flow_events import (
    Dialee,
    FlowCommand,
    FlowDial,
    FlowHangup,
    FlowNote,
    StartFlow,
)
from tongdai.pbx.flow.acd import Acd
from tongdai.pbx.flow.runner import FlowRun
from tongdai.pbx.flow.sdp import Media
from tongdai.sip.peer import Peer

APP = "app"


class FakeLeg:
    """A caller who presses ``presses`` (one per prompt or wait; None: nothing)."""

    def __init__(self, presses: list[str | None] | None = None) -> None:
        self.presses = deque(presses or [])
        self.played: list[str] = []
        self.music: list[str] = []
        self.recorded = 0

    def set_dtmf_pt(self, pt: int | None) -> None:
        pass

    async def play(self, prompt: Prompt, *, stop_on_dtmf: bool = True) -> str | None:
        self.played.append(prompt.name)
        await asyncio.sleep(0)
        if stop_on_dtmf and self.presses and self.presses[0] is not None:
            return self.presses.popleft()
        return None

    async def collect(self, *, max_digits: int = 1, timeout: float,  # noqa: ASYNC109
                      terminator: str | None = None) -> str:
        await asyncio.sleep(0)
        return (self.presses.popleft() or "") if self.presses else ""

    def start_music(self, prompt: Prompt) -> None:
        self.music.append(prompt.name)

    def stop_music(self) -> None:
        self.music.append("-")

    async def record(self, *, app_id: str, limit: float, silence: float = 5.0) -> str:
        self.recorded += 1
        return "voicemail_abc.mp3"

    def dtmf(self, digit: str) -> None:
        self.presses.append(digit)

    def stop(self) -> None:
        pass


class Prompts:
    def get(self, app_id: str, name: str) -> Prompt | None:
        return Prompt(name, b"\0\0" * 160) if name != "missing" else None


class Targets:
    def __init__(self, online: set[str]) -> None:
        self.online = online

    async def sip_user(self, app_id: str, name: str) -> str | None:
        return name

    async def device(self, app_id: str, name: str) -> Dialee | None:
        if name not in self.online:
            return None
        return Dialee(name=name, party={"number": name, "type": "user", "username": name},
                      bindings=(Binding(contact=f"sip:{name}@h", peer=Peer("udp", "h", 1)),))

    async def number(self, app_id: str, number: str) -> Dialee | None:
        return None


class Flows:
    def __init__(self, queues: dict[str, QueueRec], paused: set[str]) -> None:
        self.queues = queues
        self.paused_set = paused

    async def queue(self, app_id: str, name: str) -> QueueRec | None:
        return self.queues.get(name)

    async def paused(self, app_id: str) -> frozenset[str]:
        return frozenset(self.paused_set)


@dataclass
class Services:
    """The runtime around the runs; ``answer`` decides who answers each FlowDial."""

    online: set[str] = field(default_factory=lambda: {"alice", "bob", "carol"})
    queues: dict[str, QueueRec] = field(default_factory=dict)
    paused_set: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    answer: Any = None  # (dialees) -> name | None
    now: float = 1_000_000.0

    def __post_init__(self) -> None:
        self.commands: list[FlowCommand] = []
        self.runs: dict[str, FlowRun] = {}
        self.prompts = Prompts()
        self.targets = Targets(self.online)
        self.flows = Flows(self.queues, self.paused_set)
        self.acd = Acd(clock=lambda: self.now, registered=lambda a: a in self.online,
                       in_call=lambda: self.busy)
        self.timezone = ZoneInfo("Asia/Ho_Chi_Minh")

    def wall(self) -> float:
        return self.now

    def feed(self, cmd: FlowCommand) -> None:
        self.commands.append(cmd)
        if isinstance(cmd, FlowDial):
            who = self.answer(cmd.dialees) if self.answer else None
            run = self.runs[cmd.call_id]
            asyncio.get_running_loop().call_soon(run.dialled, who)

    def run(self, text: str, leg: FakeLeg, call_id: str = "c1") -> FlowRun:
        start = StartFlow(call_id=call_id, app_id=APP, caller="0901", flow=load(text),
                          media=Media("PCMU", 0, 101))
        run = self.runs[call_id] = FlowRun(self, start, leg)  # type: ignore[arg-type]
        run.retry_pause = 0.0
        return run

    def dials(self) -> list[tuple[str, ...]]:
        return [tuple(d.name for d in c.dialees) for c in self.commands
                if isinstance(c, FlowDial)]

    def hung_up(self) -> bool:
        return any(isinstance(c, FlowHangup) for c in self.commands)


def test_menu_digit_during_the_prompt_picks_the_option() -> None:
    async def main() -> None:
        rt = Services(answer=lambda ds: ds[0].name)
        leg = FakeLeg(["2"])
        await rt.run(EXAMPLE, leg).main()
        assert leg.played == ["welcome"]
        assert rt.dials() == [("alice",)]
        assert leg.music == ["ringback"]  # while alice rang; the bridge ends it
        assert not rt.hung_up()  # bridged: the call goes on in the core

    asyncio.run(main())


def test_caller_who_never_presses_reaches_voicemail_after_the_retries() -> None:
    async def main() -> None:
        rt = Services()
        leg = FakeLeg()
        await rt.run(EXAMPLE, leg).main()
        assert leg.played == ["welcome"] * 3 + ["beep"]
        assert leg.recorded == 1
        notes = [c for c in rt.commands if isinstance(c, FlowNote)]
        assert [n.kind for n in notes] == ["recording", "voicemail"]
        assert notes[1].recording == "voicemail_abc.mp3" and notes[1].data["box"] == "alice"
        assert rt.hung_up()

    asyncio.run(main())


def test_invalid_digit_plays_invalid_then_the_ring_group_rings_the_free() -> None:
    async def main() -> None:
        rt = Services(busy={"bob"})  # bob is in another call: not rung
        leg = FakeLeg(["9", "3"])
        await rt.run(EXAMPLE, leg).main()
        assert leg.played == ["welcome", "invalid", "welcome"]
        assert rt.dials() == [("alice",)]
        assert leg.music == ["ringback", "-"]  # nobody answered: the tone stops
        assert rt.hung_up()  # nobody answered and the group has no next

    asyncio.run(main())


def test_sequential_ring_group_one_after_another() -> None:
    async def main() -> None:
        rt = Services(answer=lambda ds: "bob" if ds[0].name == "bob" else None)
        doc = "ring_group: {members: [alice, bob, carol], strategy: sequential, timeout: 5}"
        await rt.run(doc, FakeLeg()).main()
        assert rt.dials() == [("alice",), ("bob",)]
        assert not rt.hung_up()

    asyncio.run(main())


def test_invalid_without_on_invalid_hangs_up_and_garbage_is_retried() -> None:
    async def main() -> None:
        rt = Services()
        leg = FakeLeg(["7", "8", "9"])
        await rt.run("menu: {prompt: welcome, retries: 2, options: {'1': hangup}}",
                     leg).main()
        assert leg.played == ["welcome", "invalid"] * 3
        assert rt.hung_up() and rt.dials() == []

    asyncio.run(main())


def _queue(**kw: Any) -> dict[str, QueueRec]:
    return {"sales": QueueRec(app_id=APP, name="sales", agents=("alice", "bob", "carol"),
                              **kw)}


def test_queue_ring_all_rings_every_available_agent_with_music() -> None:
    async def main() -> None:
        rt = Services(queues=_queue(), paused_set={"carol"}, answer=lambda ds: ds[-1].name)
        leg = FakeLeg()
        await rt.run("queue: sales", leg).main()
        assert rt.dials() == [("alice", "bob")]  # carol is paused
        assert leg.music == ["hold"]
        queued = [c for c in rt.commands if isinstance(c, FlowNote)]
        assert queued[0].kind == "queued" and queued[0].data == {"queue": "sales"}

    asyncio.run(main())


def test_queue_round_robin_and_longest_idle() -> None:
    async def main() -> None:
        rt = Services(queues=_queue(strategy="round-robin"),
                      answer=lambda ds: ds[0].name if ds[0].name == "bob" else None)
        await rt.run("queue: sales", FakeLeg()).main()
        assert rt.dials() == [("alice",), ("bob",)]
        rt2 = Services(queues=_queue(strategy="longest-idle"), answer=lambda ds: ds[0].name)
        rt2.acd.ended("alice", 0)
        rt2.now += 10
        rt2.acd.ended("carol", 0)
        await rt2.run("queue: sales", FakeLeg()).main()
        assert rt2.dials() == [("bob",)]  # never had a call: idle longest

    asyncio.run(main())


def test_queue_wrapup_keeps_an_agent_from_ringing() -> None:
    async def main() -> None:
        rt = Services(queues=_queue(wrapup=30), answer=lambda ds: ds[0].name)
        rt.acd.ended("alice", 30)
        await rt.run("queue: sales", FakeLeg()).main()
        assert rt.dials() == [("bob", "carol")]
        assert rt.acd.state("alice", set()) == "busy"
        rt.now += 31
        assert rt.acd.state("alice", set()) == "available"
        assert rt.acd.state("alice", {"alice"}) == "paused"
        rt.online.discard("alice")
        assert rt.acd.state("alice", set()) == "offline"

    asyncio.run(main())


def test_queue_max_wait_and_max_length_overflow() -> None:
    async def main() -> None:
        rt = Services(queues=_queue(max_wait=1, max_length=1), online=set())
        doc = ("queue: {name: sales, on_timeout: {voicemail: alice},"
               " on_full: {play: goodbye}}")
        first = asyncio.create_task(rt.run(doc, FakeLeg(), "c1").main())
        await asyncio.sleep(0.01)
        second_leg = FakeLeg()
        await rt.run(doc, second_leg, "c2").main()
        assert second_leg.played == ["goodbye"]  # full: one caller waits already
        rt.now += 2  # past max_wait: the first caller goes to voicemail
        await asyncio.wait_for(first, 3)
        assert [c.kind for c in rt.commands if isinstance(c, FlowNote)
                and c.call_id == "c1"] == ["queued", "recording", "voicemail"]

    asyncio.run(main())


def test_callers_are_served_in_order_of_arrival() -> None:
    async def main() -> None:
        rt = Services(queues=_queue(), online=set(), answer=lambda ds: ds[0].name)
        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(rt.run("queue: sales", FakeLeg(),
                                                    f"c{i}").main()))
            await asyncio.sleep(0.01)
        order: list[str] = []
        orig = rt.feed

        def feed(cmd: FlowCommand) -> None:
            if isinstance(cmd, FlowDial):
                order.append(cmd.call_id)
                rt.busy.add(cmd.dialees[0].name)
            orig(cmd)
        rt.feed = feed  # type: ignore[method-assign]
        rt.online.add("alice")  # one agent, three callers
        await asyncio.wait_for(tasks[0], 3)
        rt.busy.clear()
        await asyncio.wait_for(tasks[1], 3)
        rt.busy.clear()
        await asyncio.wait_for(tasks[2], 3)
        assert order == ["c0", "c1", "c2"]

    asyncio.run(main())


def test_business_hours_and_holidays() -> None:
    doc = ('time: {hours: {mon-fri: "08:00-17:30"}, holidays: ["2026-12-25"],'
           ' open: {play: welcome}, closed: {play: goodbye}}')
    tz = ZoneInfo("Asia/Ho_Chi_Minh")

    def heard(when: datetime) -> list[str]:
        async def main() -> list[str]:
            rt = Services(now=when.timestamp())
            leg = FakeLeg()
            await rt.run(doc, leg).main()
            return leg.played
        return asyncio.run(main())

    assert heard(datetime(2026, 12, 1, 9, 0, tzinfo=tz)) == ["welcome"]  # a Tuesday
    assert heard(datetime(2026, 12, 1, 17, 30, tzinfo=tz)) == ["goodbye"]
    assert heard(datetime(2026, 12, 5, 10, 0, tzinfo=tz)) == ["goodbye"]  # Saturday
    assert heard(datetime(2026, 12, 25, 10, 0, tzinfo=tz)) == ["goodbye"]  # holiday


class Ringing(Services):
    """Dials stay ringing until the test ends them: ``end(call_id, who)``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fed = asyncio.Event()

    def feed(self, cmd: FlowCommand) -> None:
        self.commands.append(cmd)
        self.fed.set()

    async def until(self, pred: Any) -> None:
        """Wait (at most 3 s) until ``pred()`` holds, rechecked on each command."""
        async with asyncio.timeout(3):
            while not pred():
                self.fed = asyncio.Event()
                await self.fed.wait()

    def end(self, call_id: str, who: str | None) -> None:
        self.runs[call_id].dialled(who)

    def ringing_now(self, call_id: str) -> tuple[str, ...]:
        return [tuple(d.name for d in c.dialees) for c in self.commands
                if isinstance(c, FlowDial) and c.call_id == call_id][-1]


def test_an_agent_ringing_for_a_queue_is_not_rung_by_a_ring_group() -> None:
    async def main() -> None:
        rt = Ringing(queues={"sales": QueueRec(app_id=APP, name="sales", agents=("alice",))})
        queued = asyncio.create_task(rt.run("queue: sales", FakeLeg(), "c1").main())
        await rt.until(lambda: rt.dials() == [("alice",)])
        assert rt.acd.state("alice", set()) == "ringing"
        group = asyncio.create_task(rt.run(
            "ring_group: {members: [alice, bob]}", FakeLeg(), "c2").main())
        await rt.until(lambda: len(rt.dials()) == 2)
        assert rt.ringing_now("c2") == ("bob",)  # alice rings for c1 already
        rt.end("c2", None)
        await group
        rt.end("c1", "alice")
        await queued
        assert rt.acd.state("alice", set()) == "available"  # the core's call makes it busy

    asyncio.run(main())


def test_an_agent_ringing_for_a_ring_group_is_not_rung_by_any_queue() -> None:
    async def main() -> None:
        rt = Ringing(queues={
            "sales": QueueRec(app_id=APP, name="sales", agents=("alice", "bob")),
            "support": QueueRec(app_id=APP, name="support", agents=("alice",)),
        })
        group = asyncio.create_task(rt.run(
            "ring_group: {members: [alice]}", FakeLeg(), "g1").main())
        await rt.until(lambda: rt.dials() == [("alice",)])
        sales = asyncio.create_task(rt.run("queue: sales", FakeLeg(), "q1").main())
        support = asyncio.create_task(rt.run("queue: support", FakeLeg(), "q2").main())
        await rt.until(lambda: len(rt.dials()) == 2)
        await asyncio.sleep(0.05)
        assert rt.ringing_now("q1") == ("bob",)  # not alice, ringing for the group
        assert len(rt.dials()) == 2  # support waits: its only agent rings elsewhere
        rt.end("q1", "bob")
        await sales
        rt.end("g1", None)  # the group gives up on alice: now support may ring her
        await group
        await rt.until(lambda: len(rt.dials()) == 3)
        assert rt.ringing_now("q2") == ("alice",)
        # Both queues and the group see one state for alice while she rings.
        assert rt.acd.state("alice", set()) == "ringing"
        assert rt.acd.engaged() >= {"alice"}
        rt.end("q2", "alice")
        await support

    asyncio.run(main())
