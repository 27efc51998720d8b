"""Event filters: ``call.*``, ``device.registered``, ``*``."""

from __future__ import annotations

import re

_BINDING = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
MAX_BINDINGS = 32


class BadBindings(ValueError):
    """The event filter is not a list of bindings; the message says which one."""


def parse_bindings(text: str) -> tuple[str, ...]:
    """``"call.*, device.*"`` -> ``("call.*", "device.*")``; empty means every event."""
    items = tuple(dict.fromkeys(b.strip().lower() for b in text.split(",") if b.strip()))
    if not items:
        return ("*",)
    if len(items) > MAX_BINDINGS:
        raise BadBindings(f"at most {MAX_BINDINGS} event bindings are allowed")
    for b in items:
        if not _BINDING.match(b):
            raise BadBindings(
                f"{b!r} is not an event binding: use an event name such as call.ended, a "
                "family such as call.*, or * for every event")
    return items


def matches(bindings: tuple[str, ...], event_type: str) -> bool:
    for b in bindings:
        if b == "*" or b == event_type:
            return True
        if b.endswith(".*") and event_type.startswith(b[:-1]):
            return True
    return False
