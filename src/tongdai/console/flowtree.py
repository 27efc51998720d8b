"""A flow document as a tree for the console, with a refusal shown at its node.

A refusal names the node by its path (``menu.options.1.queue: no queue 'sales'``);
the tree marks the deepest node on that path and carries the message there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(slots=True)
class TreeNode:
    key: str
    path: str
    value: str = ""  # a leaf's value
    children: list[TreeNode] = field(default_factory=list)
    error: str = ""


def tree(document: str, error: str = "") -> TreeNode | None:
    """The document's tree (None when it is not YAML/JSON), the error at its node."""
    try:
        data = yaml.safe_load(document)
    except yaml.YAMLError:
        return None
    root = _build("flow", "", data)
    if error:
        where, _, message = error.removeprefix("flow refused: ").partition(": ")
        target = _find(root, where.split(".")) if message else None
        (target or root).error = message or error
    return root


def _build(key: str, path: str, data: Any) -> TreeNode:
    node = TreeNode(key=key, path=path)
    items: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(str(i + 1), v) for i, v in enumerate(data)]
    else:
        node.value = "" if data is None else str(data)
    for k, v in items:
        node.children.append(_build(k, f"{path}.{k}" if path else k, v))
    return node


def _find(node: TreeNode, parts: list[str]) -> TreeNode | None:
    """The deepest node along ``parts`` (a path may end in a key the node lacks)."""
    best = None
    current = node
    for part in parts:
        nxt = next((c for c in current.children if c.key == part), None)
        if nxt is None:
            break
        current = best = nxt
    return best
