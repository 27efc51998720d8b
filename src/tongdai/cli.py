"""The ``tongdai`` command: run the PBX and administer apps, devices, DIDs and trunks.

Every admin command takes ``--json`` and then prints exactly one JSON object or array
on stdout; otherwise a readable table. Errors are one sentence on stderr with exit
code 1 (2 for a usage error). Device passwords and their HA1 are never printed; an
app secret only by ``app create`` and ``app rotate-secret``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tongdai import __version__
from tongdai.settings import Settings, SettingsError, load_settings
from tongdai.store import validate
from tongdai.store.errors import StoreError
from tongdai.store.records import AppRec, DeviceRec, DidRec, TrunkRec
from tongdai.store.sql import SqlStore, no_app, open_store

# Softphones are reachable from the internet; short passwords invite toll fraud.
MIN_PASSWORD = 8

Result = tuple[Any, str]  # (the --json value, the human-readable text)
Handler = Callable[[SqlStore, Settings, argparse.Namespace], Awaitable[Result]]


class CliError(Exception):
    """A user error found by the CLI itself; the message is one sentence."""


# Output ------------------------------------------------------------------------


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str) -> str:
    if not rows:
        return empty
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _cell(v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _fields(obj: dict[str, Any]) -> str:
    width = max(len(k) for k in obj)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in obj.items())


def _app(a: AppRec, *, secret: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"app_id": a.app_id, "name": a.name}
    if secret:
        d["app_secret"] = a.app_secret
    d |= {"created_at": a.created_at, "record_calls": a.record_calls,
          "default_did": a.default_did}
    return d


def _device(d: DeviceRec) -> dict[str, Any]:
    return {"sip_user": d.sip_user, "app_id": d.app_id, "display_name": d.display_name,
            "extension": d.extension, "realm": d.realm}


def _did(d: DidRec) -> dict[str, Any]:
    return {"number": d.number, "app_id": d.app_id, "sip_user": d.sip_user}


def _trunk(t: TrunkRec) -> dict[str, Any]:
    return {"name": t.name, "app_id": t.app_id, "host": t.host, "port": t.port,
            "transport": t.transport, "username": t.username,
            "has_password": t.password is not None, "prefix": t.prefix, "strip": t.strip}


# Commands ------------------------------------------------------------------------


async def _need_app(store: SqlStore, app_id: str | None) -> None:
    if app_id is not None and await store.get_app(app_id) is None:
        raise no_app(app_id)


def _password(value: str) -> str:
    if value == "-":  # keeps the password out of the shell history and ps
        value = sys.stdin.readline().rstrip("\r\n")
    if len(value) < MIN_PASSWORD:
        raise CliError(f"the password must be at least {MIN_PASSWORD} characters")
    return value


async def app_create(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = _app(await store.create_app(a.name), secret=True)
    return d, _fields(d) + "\nKeep the app secret: it is shown only now."


async def app_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = [_app(x) for x in await store.list_apps()]
    cols = ["app_id", "name", "record_calls", "default_did"]
    return rows, _table(rows, cols, "no apps yet (tongdai app create NAME)")


async def app_rotate(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    app = await store.rotate_secret(a.app_id)
    d = {"app_id": app.app_id, "app_secret": app.app_secret}
    return d, _fields(d) + "\nThe old secret and the app's websocket tokens no longer work."


async def app_delete(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await store.delete_app(a.app_id)
    return {"deleted": a.app_id}, f"app {a.app_id} and everything it owned deleted"


async def app_set(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    record = None if a.record_calls is None else a.record_calls == "yes"
    d = _app(await store.update_app(a.app_id, record_calls=record, default_did=a.default_did))
    return d, _fields(d)


async def device_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    dev = await store.add_device(
        a.app, a.sip_user, _password(a.password), realm=s.domain,
        display_name=a.name or "", extension=a.extension,
    )
    return _device(dev), _fields(_device(dev))


async def device_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await _need_app(store, a.app)
    rows = [_device(d) for d in await store.list_devices(a.app)]
    cols = ["sip_user", "extension", "display_name", "app_id", "realm"]
    return rows, _table(rows, cols, "no devices")


async def device_passwd(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    dev = await store.set_password(a.sip_user, _password(a.password), realm=s.domain)
    return _device(dev), f"password of {dev.sip_user} changed (realm {dev.realm})"


async def device_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await store.remove_device(a.sip_user, app_id=a.app)
    return {"removed": a.sip_user}, f"device {a.sip_user} removed"


async def did_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    did = await store.add_did(a.app, a.number, a.device)
    return _did(did), f"DID {did.number} now rings {did.sip_user}"


async def did_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await _need_app(store, a.app)
    rows = [_did(d) for d in await store.list_dids(a.app)]
    return rows, _table(rows, ["number", "sip_user", "app_id"], "no DIDs")


async def did_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    number = validate.did_number(a.number)
    await store.remove_did(number, app_id=a.app)
    return {"removed": number}, f"DID {number} removed"


async def trunk_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    t = await store.add_trunk(
        a.app, a.name, host=a.host, port=a.port, transport=a.transport,
        username=a.username, password=a.password, prefix=a.prefix, strip=a.strip,
    )
    return _trunk(t), _fields(_trunk(t))


async def trunk_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await _need_app(store, a.app)
    rows = [_trunk(t) for t in await store.list_trunks(a.app)]
    cols = ["name", "host", "port", "transport", "username", "prefix", "strip", "app_id"]
    return rows, _table(rows, cols, "no trunks")


async def trunk_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await store.remove_trunk(a.name, app_id=a.app)
    return {"removed": a.name}, f"trunk {a.name} removed"


async def registration_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    now = time.time()
    regs = await store.load_registrations(now)
    if a.app is not None:
        await _need_app(store, a.app)
        mine = {d.sip_user for d in await store.list_devices(a.app)}
        regs = [r for r in regs if r.sip_user in mine]
    rows = [
        {"sip_user": r.sip_user, "contact": r.contact, "source": f"{r.source_host}:{r.source_port}",
         "transport": r.transport, "expires_in": max(0, int(r.expires_at - now)),
         "user_agent": r.user_agent}
        for r in regs
    ]
    cols = ["sip_user", "contact", "source", "transport", "expires_in", "user_agent"]
    return rows, _table(rows, cols, "no live registrations")


async def cdr_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    await _need_app(store, a.app)
    _, cdrs = await store.list_cdrs(a.app, 0, time.time() + 86400, limit=a.limit, offset=0)
    rows = [
        {**c.to_api(), "call_id": c.call_id, "sip_code": c.sip_code, "hangup_by": c.hangup_by}
        for c in cdrs
    ]
    flat = [
        {**r, "caller": r["caller"]["number"], "callee": r["callee"]["number"]} for r in rows
    ]
    cols = ["call_id", "unix_timestamp", "caller", "callee", "class", "direction",
            "status_detail", "duration_seconds", "billing_seconds", "recording"]
    return rows, _table(flat, cols, "no calls")


async def db_upgrade(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    # open_store has already migrated; report where the schema stands.
    d = {"database": _redacted(s.db_url), "revision": await store.schema_revision()}
    return d, f"database {d['database']} is at schema revision {d['revision']}"


# Parser ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tongdai", description="tongdai cloud PBX")
    p.add_argument("--version", action="version", version=f"tongdai {__version__}")
    p.add_argument("--config", type=Path, metavar="FILE", help="a TOML settings file")
    p.add_argument("--json", action="store_true", help="print JSON")
    groups = p.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def leaf(sub: Any, name: str, handler: Handler | None, help: str) -> Any:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON value")
        c.set_defaults(handler=handler)
        return c

    def group(name: str, help: str) -> Any:
        g = groups.add_parser(name, help=help, description=help)
        return g.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = leaf(groups, "serve", None, "run the PBX (SIP, media and the Open API)")
    serve.add_argument("--demo", action="store_true", help="create a demo app on first run")
    leaf(groups, "demo", None, "run the PBX with a demo app (serve --demo)")

    g = group("app", "apps (tenants) and their Open API credentials")
    leaf(g, "create", app_create, "create an app; prints its app_id and app_secret").add_argument(
        "name")
    leaf(g, "list", app_list, "list the apps")
    leaf(g, "rotate-secret", app_rotate, "issue a new app secret").add_argument("app_id")
    leaf(g, "delete", app_delete, "delete an app and all it owns").add_argument("app_id")
    c = leaf(g, "set", app_set, "change an app's settings")
    c.add_argument("app_id")
    c.add_argument("--record-calls", choices=["yes", "no"])
    c.add_argument("--default-did", metavar="NUMBER", help="one of the app's DIDs; '' clears")

    g = group("device", "SIP devices (accounts)")
    c = leaf(g, "add", device_add, "add a device")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("sip_user")
    c.add_argument("--password", required=True, metavar="PW", help="'-' reads it from stdin")
    c.add_argument("--name", metavar="N", help="display name")
    c.add_argument("--extension", metavar="E", help="2 to 8 digits")
    c = leaf(g, "list", device_list, "list devices")
    c.add_argument("--app", metavar="APP_ID")
    c = leaf(g, "passwd", device_passwd, "set a device's password")
    c.add_argument("sip_user")
    c.add_argument("--password", required=True, metavar="PW", help="'-' reads it from stdin")
    c = leaf(g, "remove", device_remove, "remove a device")
    c.add_argument("sip_user")
    c.add_argument("--app", metavar="APP_ID")

    g = group("did", "DIDs: company numbers routed to a device")
    c = leaf(g, "add", did_add, "route a DID to a device")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("number")
    c.add_argument("--device", required=True, metavar="SIP_USER")
    leaf(g, "list", did_list, "list DIDs").add_argument("--app", metavar="APP_ID")
    c = leaf(g, "remove", did_remove, "remove a DID")
    c.add_argument("number")
    c.add_argument("--app", metavar="APP_ID")

    g = group("trunk", "SIP trunks to carriers")
    c = leaf(g, "add", trunk_add, "add a trunk")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("name")
    c.add_argument("--host", required=True, metavar="H")
    c.add_argument("--port", type=int, default=5060, metavar="P")
    c.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    c.add_argument("--username", metavar="U")
    c.add_argument("--password", metavar="P")
    c.add_argument("--prefix", default="", metavar="P", help="prepended to dialled numbers")
    c.add_argument("--strip", type=int, default=0, metavar="N",
                   help="leading digits removed before the prefix")
    leaf(g, "list", trunk_list, "list trunks").add_argument("--app", metavar="APP_ID")
    c = leaf(g, "remove", trunk_remove, "remove a trunk")
    c.add_argument("name")
    c.add_argument("--app", required=True, metavar="APP_ID")

    g = group("registration", "live registrations (where devices can be reached)")
    leaf(g, "list", registration_list, "list unexpired bindings").add_argument(
        "--app", metavar="APP_ID")

    g = group("cdr", "call detail records")
    c = leaf(g, "list", cdr_list, "the newest calls of an app")
    c.add_argument("--app", required=True, metavar="APP_ID")
    c.add_argument("--limit", type=int, default=50, metavar="N")

    g = group("db", "the database")
    leaf(g, "upgrade", db_upgrade, "migrate the schema to the newest version")
    return p


# Entry point ------------------------------------------------------------------------


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    """The first line of the driver's own message (SQLAlchemy adds pages of context)."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


async def _run(handler: Handler, settings: Settings, args: argparse.Namespace) -> Result:
    try:
        store = await open_store(settings.db_url)
    except (OSError, SQLAlchemyError) as exc:
        where = _redacted(settings.db_url)
        raise CliError(f"cannot open the database {where}: {_reason(exc)}") from None
    try:
        return await handler(store, settings, args)
    finally:
        await store.close()


def _fail(msg: str) -> int:
    print(f"tongdai: {msg}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the ``tongdai`` command; return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse: 2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        return _fail(str(exc))
    if args.group in ("serve", "demo"):
        from tongdai import server  # the whole PBX; only loaded to run it

        return server.main(settings, demo=args.group == "demo" or args.demo)
    try:
        value, text = asyncio.run(_run(args.handler, settings, args))
    except (StoreError, CliError) as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(f"database error: {_reason(exc)}")
    print(json.dumps(value, ensure_ascii=False) if args.json else text)
    return 0
