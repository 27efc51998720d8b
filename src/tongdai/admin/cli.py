"""``tongdai admin-key ...``, ``tongdai operator ...`` and ``tongdai audit``: who may use
the admin API and the console, and what was changed by whom."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tongdai.settings import Settings
from tongdai.store.sql import SqlStore

Result = tuple[Any, str]
Leaf = Callable[..., Any]
Group = Callable[[str, str], Any]


async def key_create(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).create_admin_key(a.app, a.label or "")
    where = f"app {a.app} only" if a.app else "every app"
    return d, _fields(d) + (f"\nThis key administers {where}. Keep it: it is shown only now"
                            " (only its SHA-256 is stored).")


async def key_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).list_admin_keys(a.app)
    cols = ["key_id", "app_id", "label", "revoked"]
    return rows, _table(rows, cols, "no admin keys (tongdai admin-key create)")


async def key_revoke(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).revoke_admin_key(a.key_id)
    return d, f"admin key {a.key_id} revoked; its console sessions end too"


async def operator_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, _password, service

    d = await service(store, s).add_operator(a.name, _password(a.password), a.app)
    return d, _fields(d) + "\nThey sign in to the console (/console) with this password."


async def operator_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).list_operators()
    return rows, _table(rows, ["name", "app_id"], "no operators (tongdai operator add)")


async def operator_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).remove_operator(a.name)
    return d, f"operator {a.name} removed"


async def audit_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).audit_log(a.app, limit=a.limit)
    flat = [{**r, "detail": ", ".join(f"{k}={v}" for k, v in r["detail"].items())}
            for r in rows]
    cols = ["seq", "actor", "app_id", "action", "target", "detail"]
    return rows, _table(flat, cols, "no changes recorded")


def add_commands(group: Group, leaf: Leaf) -> None:
    """The ``admin-key``, ``operator`` and ``audit`` groups (``group``, ``leaf``: cli.py's)."""
    g = group("admin-key", "keys of the admin API and the console")
    c = leaf(g, "create", key_create, "a new admin key (printed only now)")
    c.add_argument("--app", metavar="APP_ID", help="confine the key to this app (tenant)")
    c.add_argument("--label", metavar="TEXT", help="what the key is for")
    leaf(g, "list", key_list, "list admin keys (never the keys)").add_argument(
        "--app", metavar="APP_ID")
    leaf(g, "revoke", key_revoke, "revoke an admin key").add_argument("key_id")

    g = group("operator", "people who sign in to the console with a password")
    c = leaf(g, "add", operator_add, "add an operator")
    c.add_argument("name")
    c.add_argument("--password", required=True, metavar="PW",
                   help="at least 10 characters; '-' reads it from stdin")
    c.add_argument("--app", metavar="APP_ID", help="confine the operator to this app")
    leaf(g, "list", operator_list, "list operators")
    leaf(g, "remove", operator_remove, "remove an operator").add_argument("name")

    g = group("audit", "the log of changes: who, what, when")
    c = leaf(g, "list", audit_list, "the newest changes")
    c.add_argument("--app", metavar="APP_ID")
    c.add_argument("--limit", type=int, default=50, metavar="N")
