"""The shape of a flow as a graph: what follows each node, and the loops refused
(nodes from which the call can neither end nor reach a person, and loops of goto/time
nodes alone, which would spin without the caller hearing anything)."""

from __future__ import annotations

from tongdai.flows.nodes import (
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


def children(node: Node) -> list[Node]:
    match node:
        case Play(next=n) | Device(next=n) | RingGroup(next=n) | Number(next=n):
            return [n] if n is not None else []
        case Menu(options=opts, on_invalid=inv, on_timeout=to):
            return [*opts.values(), *(x for x in (inv, to) if x is not None)]
        case Queue(on_timeout=to, on_full=full):
            return [x for x in (to, full) if x is not None]
        case Time(open=o, closed=c):
            return [o, c]
    return []


def _successors(node: Node, named: dict[str, Node]) -> list[Node]:
    if isinstance(node, Goto):
        return [named[node.target]]
    return children(node)


def _ends(node: Node) -> bool:
    """A node where the flow can leave the loop: a person answers or the call ends."""
    match node:
        case Hangup() | Voicemail() | Device() | RingGroup() | Queue() | Number():
            return True
        case Play(next=None) | Menu(on_invalid=None) | Menu(on_timeout=None):
            return True
    return False


def check_loops(start: Node, named: dict[str, Node]) -> None:
    """Refuse nodes from which the call can never end nor reach a person, and loops of
    goto/time alone (they would spin without the caller hearing anything)."""
    paths = {id(node): f"nodes.{name}" for name, node in named.items()}
    reach: list[Node] = []
    seen: set[int] = set()
    todo = [start, *named.values()]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        reach.append(node)
        todo.extend(_successors(node, named))
    # Which nodes can reach an end: grow from the ends backwards until nothing changes.
    good = {id(n) for n in reach if _ends(n)}
    changed = True
    while changed:
        changed = False
        for n in reach:
            if id(n) not in good and any(id(s) in good for s in _successors(n, named)):
                good.add(id(n))
                changed = True
    for n in reach:
        if id(n) not in good:
            raise FlowError(paths.get(id(n), _where(n, named)), "a loop with no exit")
    # Instant loops: goto and time nodes only.
    for name, node in named.items():
        if _instant_cycle(node, named):
            raise FlowError(f"nodes.{name}", "a loop of goto/time nodes with nothing to hear")


def _where(node: Node, named: dict[str, Node]) -> str:
    for name, root in named.items():
        stack = [root]
        while stack:
            n = stack.pop()
            if n is node:
                return f"nodes.{name}"
            stack.extend(children(n))
    return ""


def _instant_cycle(start: Node, named: dict[str, Node]) -> bool:
    stack = [s for s in _successors(start, named)]
    seen: set[int] = set()
    if not isinstance(start, Goto | Time):
        return False
    while stack:
        n = stack.pop()
        if n is start:
            return True
        if id(n) in seen or not isinstance(n, Goto | Time):
            continue
        seen.add(id(n))
        stack.extend(_successors(n, named))
    return False
