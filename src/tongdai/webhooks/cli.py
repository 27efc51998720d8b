"""``tongdai webhook ...``: an app's webhook endpoints and their deliveries (the rules
are the admin service's, ``tongdai.admin.service``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tongdai.settings import Settings
from tongdai.store.sql import SqlStore
from tongdai.webhooks.store import STATUSES

Result = tuple[Any, str]
Leaf = Callable[..., Any]


async def webhook_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).add_webhook(a.app, a.url, a.events)
    return d, _fields(d) + ("\nKeep the secret: it signs every delivery (docs/webhooks.md) "
                            "and is shown only now.")


async def webhook_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).list_webhooks(a.app)
    cols = ["webhook_id", "app_id", "url", "events", "enabled", "failures", "disabled_reason"]
    return rows, _table(rows, cols, "no webhooks (tongdai webhook add --app APP_ID URL)")


async def webhook_enable(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).enable_webhook(a.webhook_id, a.app)
    return d, _fields(d) + "\nIts waiting deliveries go out now, oldest first."


async def webhook_disable(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    d = await service(store, s).enable_webhook(a.webhook_id, a.app, enabled=False)
    return d, _fields(d) + "\nEvents are no longer queued for it; those queued wait."


async def webhook_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import service

    d = await service(store, s).remove_webhook(a.webhook_id, a.app)
    return d, f"removed webhook {a.webhook_id} and its deliveries"


async def webhook_deliveries(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _table, service

    rows = await service(store, s).list_deliveries(a.app, a.webhook, a.status, a.limit)
    cols = ["delivery_id", "webhook_id", "event", "status", "attempts", "last_error"]
    return rows, _table(rows, cols, "no deliveries")


async def webhook_redeliver(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    from tongdai.cli import _fields, service

    out, enabled = await service(store, s).redeliver(a.delivery_id)
    note = "\nQueued: the server sends it within a second."
    if not enabled:
        note = (f"\nQueued, but webhook {out['webhook_id']} is disabled: it goes out once "
                "'tongdai webhook enable' is run.")
    return out, _fields(out) + note


def add_commands(g: Any, leaf: Leaf) -> None:
    """The ``webhook`` group's commands (``g``: its subparsers; ``leaf``: cli.py's)."""
    c = leaf(g, "add", webhook_add, "POST an app's events, signed, to a URL; prints the "
             "signing secret, only now")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("url")
    c.add_argument("--events", default="*", metavar="BINDINGS",
                   help="comma-separated: call.*, device.*, call.ended, ...; default * (all)")
    leaf(g, "list", webhook_list, "list webhooks").add_argument("--app", metavar="APP_ID")
    for name, handler, text in (
            ("enable", webhook_enable, "enable a webhook (after it was disabled)"),
            ("disable", webhook_disable, "stop queueing events for a webhook"),
            ("remove", webhook_remove, "remove a webhook and its deliveries")):
        c = leaf(g, name, handler, text)
        c.add_argument("webhook_id")
        c.add_argument("--app", metavar="APP_ID")
    c = leaf(g, "deliveries", webhook_deliveries,
             "recent deliveries, newest first: status, attempts, last error")
    c.add_argument("--app", metavar="APP_ID")
    c.add_argument("--webhook", metavar="WEBHOOK_ID")
    c.add_argument("--status", choices=STATUSES)
    c.add_argument("--limit", type=int, default=50, metavar="N")
    leaf(g, "redeliver", webhook_redeliver, "send one delivery again (same id and body)"
         ).add_argument("delivery_id")
