"""Flow documents: the issue's example as written, every node kind, and refusals that
name the bad node's path."""

from __future__ import annotations

import json

import pytest

from tongdai.flows import check
from tongdai.flows.document import (
    Device,
    FlowError,
    Goto,
    Hangup,
    Menu,
    Number,
    Play,
    Queue,
    RingGroup,
    Time,
    Voicemail,
    load,
)

EXAMPLE = """\
menu:
  prompt: welcome
  timeout: 5
  retries: 2
  options:
    "1": {queue: sales}
    "2": {device: alice}
    "3": {ring_group: {members: [alice, bob], strategy: simultaneous, timeout: 20}}
  on_timeout: {voicemail: alice}
"""


def test_the_issue_example_loads_as_written() -> None:
    flow = load(EXAMPLE)
    assert flow.start == Menu(
        prompt="welcome", timeout=5, retries=2,
        options={"1": Queue("sales"), "2": Device("alice"),
                 "3": RingGroup(("alice", "bob"), "simultaneous", 20)},
        on_timeout=Voicemail("alice"))
    assert flow.refs.queues == {"sales": "menu.options.1.queue"}
    assert flow.refs.devices == {"alice": "menu.options.2.device",
                                 "bob": "menu.options.3.ring_group.members.1"}
    check.against_app(flow, devices={"alice", "bob"}, queues={"sales"})
    with pytest.raises(FlowError, match=r"^menu.options.1.queue: no queue 'sales' in this app$"):
        check.against_app(flow, devices={"alice", "bob"}, queues=set())
    with pytest.raises(FlowError, match=r"^menu.options.3.ring_group.members.1: no device 'bob'"):
        check.against_app(flow, devices={"alice"}, queues={"sales"})


def test_json_is_a_flow_too() -> None:
    assert load(json.dumps({"play": "welcome"})).start == Play("welcome")


def test_every_kind_with_named_nodes() -> None:
    flow = load("""
start: hours
nodes:
  hours:
    time:
      hours: {mon-fri: "08:00-17:30", sat: ["08:00-12:00"]}
      holidays: [2026-01-01, "2026-09-02"]
      open: {goto: main}
      closed: {play: {prompt: goodbye}}
  main:
    menu:
      prompt: welcome
      options:
        "1": {queue: {name: sales, on_timeout: {voicemail: {box: "101", limit: 60}},
                      on_full: hangup}}
        "2": {number: {number: "+84901234567", timeout: 30, next: {goto: main}}}
        "#": {device: {name: alice, timeout: 10, next: {hangup: }}}
      on_invalid: {goto: main}
""")
    assert isinstance(flow.start, Time)
    assert flow.start.hours[0] == ((480, 1050),) and flow.start.hours[5] == ((480, 720),)
    assert flow.start.holidays == frozenset({"2026-01-01", "2026-09-02"})
    menu = flow.nodes["main"]
    assert isinstance(menu, Menu) and menu.on_invalid == Goto("main")
    assert menu.options["1"] == Queue("sales", Voicemail("101", "", 60), Hangup())
    assert menu.options["2"] == Number("+84901234567", 30, Goto("main"))
    assert menu.options["#"] == Device("alice", 10, Hangup())


@pytest.mark.parametrize(("doc", "error"), [
    ("menu: {prompt: w, options: {'1': {dance: x}}}",
     "menu.options.1.dance: unknown node kind 'dance'"),
    ("{start: a, nodes: {a: {goto: b}}}", "nodes.a.goto: no node 'b' in nodes"),
    ("{start: a, nodes: {a: {goto: a}}}", "nodes.a: a loop with no exit"),
    ("{start: a, nodes: {a: {play: {prompt: x, next: {goto: b}}},"
     " b: {play: {prompt: y, next: {goto: a}}}}}", "nodes.b: a loop with no exit"),
    ("{start: a, nodes: {a: {time: {hours: {mon: '08:00-09:00'}, open: {goto: a},"
     " closed: hangup}}}}", "nodes.a: a loop of goto/time"),
    ("menu: {prompt: w, options: {'12': hangup}}", "menu.options.12: an option is one digit"),
    ("menu: {prompt: w, options: {'1': hangup}, timeout: 0}", "menu.timeout: a number"),
    ("menu: {options: {'1': hangup}}", "menu.prompt: required"),
    ("ring_group: {members: [a], strategy: random}", "ring_group.strategy: simultaneous or"),
    ("time: {hours: {funday: '08:00-09:00'}, open: hangup, closed: hangup}",
     "time.hours.funday: days are"),
    ("time: {hours: {mon: '18:00-09:00'}, open: hangup, closed: hangup}",
     "time.hours.mon: '18:00-09:00': the start is before the end"),
    ("number: 'call me'", "number: a telephone number"),
    ("queue: {name: sales, colour: red}", "queue.colour: unknown key"),
    ("[1, 2]", "a flow is a node"),
    ("menu: [", "not YAML nor JSON"),
])
def test_refused_with_the_path(doc: str, error: str) -> None:
    with pytest.raises(FlowError) as info:
        load(doc)
    assert str(info.value).startswith(error), str(info.value)


def test_prompts_are_checked_against_the_library() -> None:
    flow = load(EXAMPLE)
    check.prompts(flow, {"welcome", "invalid"})
    with pytest.raises(FlowError, match=r"^menu.prompt: no prompt 'welcome'"):
        check.prompts(flow, {"invalid"})
