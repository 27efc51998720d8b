"""One injected clock: services read the time they are given, not the system's."""

from __future__ import annotations

import ast
from pathlib import Path

import tongdai.pbx

# Crash recovery runs once at start-up, before the services and their clock exist.
_START_UP = {"recovery.py"}


def test_services_do_not_read_the_system_clock() -> None:
    root = Path(tongdai.pbx.__file__).parent
    readers = []
    for path in root.rglob("*.py"):
        if path.name in _START_UP:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in {"time", "monotonic"}
                    and isinstance(node.value, ast.Name) and node.value.id == "time"):
                readers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert readers == []
