"""The nodes of a call flow (``flows/document.py`` parses them) and ``FlowError``,
which names the path of a bad node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Strategy = Literal["simultaneous", "sequential"]


class FlowError(ValueError):
    """A flow that cannot run; ``path`` names its bad node (``menu.options.1``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Play:
    prompt: str
    next: Node | None = None  # None: hang up after it


@dataclass(frozen=True, slots=True)
class Menu:
    prompt: str
    options: dict[str, Node]
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: str = "invalid"
    on_invalid: Node | None = None  # after the last retry; None: hang up
    on_timeout: Node | None = None


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    timeout: float = 30.0
    next: Node | None = None  # nobody answered


@dataclass(frozen=True, slots=True)
class RingGroup:
    members: tuple[str, ...]
    strategy: Strategy = "simultaneous"
    timeout: float = 20.0  # per member (sequential), or for all (simultaneous)
    next: Node | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    on_timeout: Node | None = None  # waited the queue's max_wait
    on_full: Node | None = None  # the queue held max_length callers already


@dataclass(frozen=True, slots=True)
class Voicemail:
    box: str  # the device whose mailbox it is
    prompt: str = ""  # before the beep; "": the beep alone
    limit: float = 120.0


@dataclass(frozen=True, slots=True)
class Time:
    """Open in ``hours`` (weekday → (start minute, end minute) ranges) unless ``date``
    is one of ``holidays``; local time in TONGDAI_TIMEZONE."""

    hours: dict[int, tuple[tuple[int, int], ...]]
    holidays: frozenset[str]
    open: Node
    closed: Node


@dataclass(frozen=True, slots=True)
class Number:
    number: str
    timeout: float = 60.0
    next: Node | None = None


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Goto:
    target: str


Node = Play | Menu | Device | RingGroup | Queue | Voicemail | Time | Number | Hangup | Goto
KINDS = ("play", "menu", "device", "ring_group", "queue", "voicemail", "time", "number",
         "hangup", "goto")
