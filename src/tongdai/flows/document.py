"""Call flow documents: what a DID does with a call, written in YAML or JSON.

A document is one node, or named nodes with a start::

    menu:                                  start: main
      prompt: welcome                      nodes:
      options:                               main: {menu: {prompt: welcome, options:
        "1": {queue: sales}                           {"1": {goto: sales}}}}
      on_timeout: {voicemail: alice}         sales: {queue: sales}

A node is a mapping with one key, its kind: ``play``, ``menu``, ``device``,
``ring_group``, ``queue``, ``voicemail``, ``time``, ``number``, ``hangup`` and
``goto`` (to a named node). Where a node takes only a name, the name alone will do
(``{queue: sales}``). Parsing checks the shape and names the path of the bad node
(``menu.options.1.queue: ...``); ``references`` lists what must exist in the app, and
``flows/check.py`` checks those against it. A flow with a loop that never reaches a
caller, an agent or an end (``{goto: a}`` in ``a``) is refused (``flows/graph.py``).
The nodes themselves are in ``flows/nodes.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tongdai.flows.graph import check_loops
from tongdai.flows.nodes import (
    KINDS,
    Device,
    FlowError,
    Goto,
    Hangup,
    Menu,
    Node,
    Number,
    Play,
    Queue,
    RingGroup,
    Time,
    Voicemail,
)

__all__ = [
    "KINDS", "Device", "Flow", "FlowError", "Goto", "Hangup", "Menu", "Node", "Number",
    "Play", "Queue", "References", "RingGroup", "Time", "Voicemail", "load", "parse",
]

# libyaml's safe loader when PyYAML was built with it (about 8x faster), else PyYAML's.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_BYTES = 64 * 1024
MAX_NODES = 500
DIGITS = frozenset("0123456789*#")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")


@dataclass(frozen=True, slots=True)
class References:
    """What a flow names that the app must have."""

    devices: dict[str, str] = field(default_factory=dict)  # name → path of first use
    queues: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Flow:
    start: Node
    nodes: dict[str, Node]
    refs: References


def load(text: str | bytes) -> Flow:
    """Parse and check a flow document (YAML, of which JSON is a part)."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise FlowError("", f"a flow is at most {MAX_BYTES} bytes")
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise FlowError("", "a flow is UTF-8 text") from None
    if len(text) > MAX_BYTES:
        raise FlowError("", f"a flow is at most {MAX_BYTES} bytes")
    try:
        doc = yaml.load(text, Loader=_LOADER)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        try:
            doc = json.loads(text)
        except ValueError:
            raise FlowError("", f"not YAML nor JSON: {_first_line(exc)}") from None
    return parse(doc)


def parse(doc: Any) -> Flow:
    if not isinstance(doc, dict) or not doc:
        raise FlowError("", "a flow is a node (e.g. {menu: ...}) or {start:, nodes:}")
    p = _Parser()
    if "nodes" in doc or "start" in doc:
        extra = set(doc) - {"start", "nodes"}
        if extra:
            raise FlowError(sorted(map(str, extra))[0], "unknown key beside start and nodes")
        nodes = doc.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            raise FlowError("nodes", "a mapping of names to nodes")
        for name in nodes:
            if not isinstance(name, str) or not _NAME.match(name):
                raise FlowError(f"nodes.{name}", "a node name is letters, digits, _ . - @ +")
        p.names = set(nodes)
        named = {name: p.node(node, f"nodes.{name}") for name, node in nodes.items()}
        start_name = doc.get("start")
        if not isinstance(start_name, str) or start_name not in named:
            raise FlowError("start", f"no node {start_name!r} in nodes")
        start = named[start_name]
    else:
        named = {}
        start = p.node(doc, "")
    for path, target in p.gotos:
        if target not in named:
            raise FlowError(path, f"no node {target!r} in nodes")
    check_loops(start, named)
    if p.count > MAX_NODES:
        raise FlowError("", f"a flow has at most {MAX_NODES} nodes")
    return Flow(start=start, nodes=named, refs=p.refs)


class _Parser:
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.gotos: list[tuple[str, str]] = []
        self.refs = References()
        self.count = 0

    def node(self, raw: Any, path: str) -> Node:
        self.count += 1
        if isinstance(raw, str) and raw == "hangup":
            return Hangup()
        if not isinstance(raw, dict) or len(raw) != 1:
            raise FlowError(path, f"a node is one of {', '.join(KINDS)} (a one-key mapping)")
        kind, body = next(iter(raw.items()))
        here = _join(path, str(kind))
        match kind:
            case "play":
                return self._play(body, here)
            case "menu":
                return self._menu(body, here)
            case "device":
                return self._device(body, here)
            case "ring_group":
                return self._ring_group(body, here)
            case "queue":
                return self._queue(body, here)
            case "voicemail":
                return self._voicemail(body, here)
            case "time":
                return self._time(body, here)
            case "number":
                return self._number(body, here)
            case "hangup":
                if body not in (None, {}, True):
                    raise FlowError(here, "hangup takes nothing")
                return Hangup()
            case "goto":
                if not isinstance(body, str) or not body:
                    raise FlowError(here, "goto names a node")
                self.gotos.append((here, body))
                return Goto(body)
        raise FlowError(here, f"unknown node kind {kind!r} (one of {', '.join(KINDS)})")

    def _opt_node(self, body: dict[str, Any], key: str, path: str) -> Node | None:
        raw = body.get(key)
        return None if raw is None else self.node(raw, _join(path, key))

    def _play(self, body: Any, path: str) -> Play:
        if isinstance(body, str):
            return Play(self._prompt(body, path))
        b = _keys(body, path, {"prompt", "next"}, {"prompt"})
        return Play(self._prompt(b["prompt"], _join(path, "prompt")),
                    self._opt_node(b, "next", path))

    def _menu(self, body: Any, path: str) -> Menu:
        b = _keys(body, path, {"prompt", "options", "timeout", "retries", "invalid_prompt",
                               "on_invalid", "on_timeout"}, {"prompt", "options"})
        raw = b["options"]
        opath = _join(path, "options")
        if not isinstance(raw, dict) or not raw:
            raise FlowError(opath, "a mapping of digits to nodes")
        options: dict[str, Node] = {}
        for key, node in raw.items():
            digit = str(key)
            if len(digit) != 1 or digit not in DIGITS:
                raise FlowError(_join(opath, digit), "an option is one digit 0-9, * or #")
            options[digit] = self.node(node, _join(opath, digit))
        return Menu(
            prompt=self._prompt(b["prompt"], _join(path, "prompt")), options=options,
            timeout=_number(b, "timeout", path, 5.0, 1, 60),
            retries=int(_number(b, "retries", path, 2, 0, 10)),
            invalid_prompt=self._prompt(b.get("invalid_prompt", "invalid"),
                                        _join(path, "invalid_prompt")),
            on_invalid=self._opt_node(b, "on_invalid", path),
            on_timeout=self._opt_node(b, "on_timeout", path),
        )

    def _device(self, body: Any, path: str) -> Device:
        if isinstance(body, str):
            return Device(self._dev(body, path))
        b = _keys(body, path, {"name", "timeout", "next"}, {"name"})
        return Device(self._dev(b["name"], _join(path, "name")),
                      _number(b, "timeout", path, 30.0, 1, 600), self._opt_node(b, "next", path))

    def _ring_group(self, body: Any, path: str) -> RingGroup:
        b = _keys(body, path, {"members", "strategy", "timeout", "next"}, {"members"})
        members = b["members"]
        mpath = _join(path, "members")
        if not isinstance(members, list) or not members or len(members) > 50:
            raise FlowError(mpath, "a list of 1 to 50 devices")
        names = tuple(self._dev(m, _join(mpath, str(i))) for i, m in enumerate(members))
        strategy = b.get("strategy", "simultaneous")
        if strategy not in ("simultaneous", "sequential"):
            raise FlowError(_join(path, "strategy"), "simultaneous or sequential")
        return RingGroup(names, strategy, _number(b, "timeout", path, 20.0, 1, 600),
                         self._opt_node(b, "next", path))

    def _queue(self, body: Any, path: str) -> Queue:
        if isinstance(body, str):
            return Queue(self._queue_name(body, path))
        b = _keys(body, path, {"name", "on_timeout", "on_full"}, {"name"})
        return Queue(self._queue_name(b["name"], _join(path, "name")),
                     self._opt_node(b, "on_timeout", path), self._opt_node(b, "on_full", path))

    def _voicemail(self, body: Any, path: str) -> Voicemail:
        if isinstance(body, str):
            return Voicemail(self._dev(body, path))
        b = _keys(body, path, {"box", "prompt", "limit"}, {"box"})
        prompt = b.get("prompt")
        return Voicemail(self._dev(b["box"], _join(path, "box")),
                         self._prompt(prompt, _join(path, "prompt")) if prompt else "",
                         _number(b, "limit", path, 120.0, 5, 600))

    def _time(self, body: Any, path: str) -> Time:
        b = _keys(body, path, {"hours", "holidays", "open", "closed"},
                  {"hours", "open", "closed"})
        hours = _hours(b["hours"], _join(path, "hours"))
        hpath = _join(path, "holidays")
        raw = b.get("holidays") or []
        if not isinstance(raw, list) or not all(isinstance(d, str | _date_type()) for d in raw):
            raise FlowError(hpath, "a list of dates (YYYY-MM-DD)")
        days = frozenset(str(d) for d in raw)
        for d in days:
            if not _DATE.match(d):
                raise FlowError(hpath, f"{d!r} is not a date (YYYY-MM-DD)")
        return Time(hours, days, self.node(b["open"], _join(path, "open")),
                    self.node(b["closed"], _join(path, "closed")))

    def _number(self, body: Any, path: str) -> Number:
        if isinstance(body, str | int) and not isinstance(body, bool):
            return Number(_dial(str(body), path))
        b = _keys(body, path, {"number", "timeout", "next"}, {"number"})
        return Number(_dial(str(b["number"]), _join(path, "number")),
                      _number(b, "timeout", path, 60.0, 1, 600), self._opt_node(b, "next", path))

    def _dev(self, name: Any, path: str) -> str:
        out = _name(name, path, "a device")
        self.refs.devices.setdefault(out, path)
        return out

    def _queue_name(self, name: Any, path: str) -> str:
        out = _name(name, path, "a queue")
        self.refs.queues.setdefault(out, path)
        return out

    def _prompt(self, name: Any, path: str) -> str:
        out = _name(name, path, "a prompt")
        self.refs.prompts.setdefault(out, path)
        return out


def _date_type() -> type:
    import datetime

    return datetime.date  # YAML reads 2026-01-01 as a date


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _keys(body: Any, path: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FlowError(path, f"a mapping with {', '.join(sorted(required))}")
    for key in body:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise FlowError(_join(path, str(key)), f"unknown key (one of {known})")
    for key in sorted(required):
        if body.get(key) is None:
            raise FlowError(_join(path, key), "required")
    return body


def _name(name: Any, path: str, what: str) -> str:
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)  # an extension written as a number
    if not isinstance(name, str) or not _NAME.match(name):
        raise FlowError(path, f"{what}'s name: letters, digits, _ . - @ +")
    return name


def _number(b: dict[str, Any], key: str, path: str, default: float, lo: float,
            hi: float) -> float:
    raw = b.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not lo <= raw <= hi:
        raise FlowError(_join(path, key), f"a number of seconds from {lo:g} to {hi:g}")
    return float(raw)


def _dial(number: str, path: str) -> str:
    if not _NUMBER.match(number):
        raise FlowError(path, "a telephone number (digits, optionally a leading +)")
    return number


def _hours(raw: Any, path: str) -> dict[int, tuple[tuple[int, int], ...]]:
    """``{mon-fri: "08:00-17:30", sat: ["08:00-12:00"]}`` → weekday → minute ranges."""
    if not isinstance(raw, dict) or not raw:
        raise FlowError(path, 'a mapping of days to hours, e.g. {mon-fri: "08:00-17:30"}')
    out: dict[int, list[tuple[int, int]]] = {}
    for key, spans in raw.items():
        kpath = _join(path, str(key))
        days = _days(str(key), kpath)
        spans = [spans] if isinstance(spans, str) else spans
        if not isinstance(spans, list) or not spans:
            raise FlowError(kpath, 'hours as "HH:MM-HH:MM" or a list of them')
        for span in spans:
            m = _HOURS.match(str(span))
            if m is None:
                raise FlowError(kpath, f'{span!r} is not "HH:MM-HH:MM"')
            h1, m1, h2, m2 = map(int, m.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or end > 1440 or start >= end:
                raise FlowError(kpath, f"{span!r}: the start is before the end, within a day")
            for d in days:
                out.setdefault(d, []).append((start, end))
    return {d: tuple(sorted(v)) for d, v in out.items()}


def _days(key: str, path: str) -> list[int]:
    parts = key.lower().split("-")
    if not all(p in DAYS for p in parts) or len(parts) > 2:
        raise FlowError(path, f"days are {', '.join(DAYS)} or a range like mon-fri")
    first = DAYS.index(parts[0])
    last = DAYS.index(parts[-1])
    return list(range(first, last + 1)) if first <= last else \
        [*range(first, 7), *range(0, last + 1)]
