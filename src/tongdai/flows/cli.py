"""``tongdai flow|queue|agent ...``: call flows on DIDs and internal extensions, queues
of agents, and pausing agents. A flow is refused with the path of its bad node
(``menu.options.1.queue: no queue 'sales' in this app``); the running server picks
every change up within about a second. The rules are the admin service's
(``tongdai.admin.flows``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tongdai.flows.store import STRATEGIES
from tongdai.settings import Settings
from tongdai.store.errors import Invalid
from tongdai.store.sql import SqlStore

Result = tuple[Any, str]
Leaf = Callable[..., Any]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid(f"cannot read {path}: {exc}") from None


async def flow_set(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    flows = service(store, s).flows
    text = _read(a.file)
    d = await (flows.set_flow(a.app, a.did, text) if a.did is not None
               else flows.set_extension_flow(a.app, a.extension, text))
    return d, _fields(d) + "\nThe server runs it from the next call (within a second)."


async def flow_check(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).flows.check_flow(_read(a.file), a.app)
    where = f" against app {a.app}" if a.app else " (add --app to check its names)"
    return d, f"{a.file}: the flow is valid{where}"


async def flow_show(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    flows = service(store, s).flows
    if a.did is not None:
        d = await flows.get_flow(a.did, a.app)
    elif a.app is None:
        raise Invalid("a flow on an extension is shown with --app APP")
    else:
        d = await flows.get_extension_flow(a.app, a.extension)
    return d, f"# {d['name']}, version {d['version']}\n{d['document'].rstrip()}"


async def flow_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    flows = service(store, s).flows
    rows = [*await flows.list_flows(a.app), *await flows.list_extension_flows(a.app)]
    return rows, _table(rows,
                        ["app_id", "did", "extension", "version"],
                        "no flows (tongdai flow set --app APP --did NUMBER FILE)")


async def flow_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    flows = service(store, s).flows
    if a.did is not None:
        d = await flows.remove_flow(a.app, a.did)
        return d, f"DID {a.did} rings its device again"
    d = await flows.remove_extension_flow(a.app, a.extension)
    return d, f"extension {a.extension} has no flow any more"


def _where(c: Any, *, required: bool = True) -> None:
    """``--did NUMBER`` or ``--extension EXT``: what the flow is attached to."""
    g = c.add_mutually_exclusive_group(required=required)
    g.add_argument("--did", metavar="NUMBER", help="one of the app's DIDs")
    g.add_argument("--extension", metavar="EXT",
                   help="an internal extension the app's devices dial (no device's own)")


def _queue_args(a: argparse.Namespace) -> dict[str, Any]:
    return {"agents": a.agents.split(",") if a.agents is not None else None,
            "strategy": a.strategy, "max_wait": a.max_wait, "max_length": a.max_length,
            "ring_timeout": a.ring_timeout, "wrapup": a.wrapup}


async def queue_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    args = _queue_args(a)
    d = await service(store, s).flows.add_queue(a.app, a.name, args.pop("agents"), **args)
    return d, _fields({**d, "agents": ",".join(d["agents"])})


async def queue_set(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).flows.update_queue(a.app, a.name, **_queue_args(a))
    return d, _fields({**d, "agents": ",".join(d["agents"])})


async def queue_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).flows.list_queues(a.app)
    text = [{**r, "agents": ",".join(r["agents"])} for r in rows]
    cols = ["app_id", "name", "agents", "strategy", "max_wait", "max_length",
            "ring_timeout", "wrapup"]
    return rows, _table(text, cols, "no queues (tongdai queue add --app APP NAME --agents ...)")


async def queue_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).flows.remove_queue(a.app, a.name)
    return d, f"removed queue {a.name}"


async def agent_pause(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).flows.pause_agent(a.app, a.sip_user, True)
    return d, f"{a.sip_user} takes no queue calls"


async def agent_unpause(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).flows.pause_agent(a.app, a.sip_user, False)
    return d, f"{a.sip_user} takes queue calls again"


def add_commands(group: Callable[[str, str], Any], leaf: Leaf) -> None:
    """The ``flow``, ``queue`` and ``agent`` groups (``group``/``leaf``: cli.py's)."""
    g = group("flow", "call flows: what a DID does with a call (menus, queues, voicemail)")
    c = leaf(g, "set", flow_set,
             "attach a flow (YAML or JSON file) to one of an app's DIDs or extensions")
    c.add_argument("--app", required=True, metavar="APP_ID")
    _where(c)
    c.add_argument("file", metavar="FILE")
    c = leaf(g, "check", flow_check, "check a flow file (with --app: its names too)")
    c.add_argument("file", metavar="FILE")
    c.add_argument("--app", metavar="APP_ID")
    c = leaf(g, "show", flow_show, "print a DID's or an extension's flow")
    _where(c)
    c.add_argument("--app", metavar="APP_ID")
    leaf(g, "list", flow_list, "list flows").add_argument("--app", metavar="APP_ID")
    c = leaf(g, "remove", flow_remove,
             "detach a DID's flow (it rings its device again) or an extension's")
    c.add_argument("--app", required=True, metavar="APP_ID")
    _where(c)

    g = group("queue", "queues of agents (ACD) that flows send callers to")
    for name, handler, text in (("add", queue_add, "add a queue"),
                                ("set", queue_set, "change a queue")):
        c = leaf(g, name, handler, text)
        c.add_argument("--app", required=True, metavar="APP_ID")
        c.add_argument("name")
        c.add_argument("--agents", metavar="A,B", help="devices (sip_user), in order")
        c.add_argument("--strategy", choices=STRATEGIES,
                       help="ring-all (default), round-robin or longest-idle")
        c.add_argument("--max-wait", type=int, metavar="S",
                       help="seconds before on_timeout (0: no limit)")
        c.add_argument("--max-length", type=int, metavar="N",
                       help="callers waiting before on_full (0: no limit)")
        c.add_argument("--ring-timeout", type=int, metavar="S",
                       help="seconds each agent rings (default 15)")
        c.add_argument("--wrapup", type=int, metavar="S",
                       help="seconds after a call before an agent is rung again (default 5)")
    leaf(g, "list", queue_list, "list queues").add_argument("--app", metavar="APP_ID")
    c = leaf(g, "remove", queue_remove, "remove a queue no flow uses")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("name")

    g = group("agent", "queue agents: pause and unpause")
    for name, handler, text in (("pause", agent_pause, "an agent takes no queue calls"),
                                ("unpause", agent_unpause, "an agent takes queue calls again")):
        c = leaf(g, name, handler, text)
        c.add_argument("--app", required=True, metavar="APP_ID")
        c.add_argument("sip_user")
