"""The ``tongdai`` command: run the PBX and administer apps, devices, DIDs and trunks.

Every admin command takes ``--json`` and then prints exactly one JSON object or array
on stdout; otherwise a line naming the database it used, then a readable table. Errors
are one sentence on stderr with exit code 1 (2 for a usage error). Device passwords and
their HA1 are never printed; an app secret only by ``app create`` and
``app rotate-secret``.

The database is the one of the data dir (``--data-dir``, ``TONGDAI_DATA_DIR``, the
config file, ``./tongdai-data``) unless ``TONGDAI_DATABASE_URL`` names another. Only
``db init``/``db upgrade`` (and ``serve``) create a database; every other command
refuses to run on a missing one, which is almost always the wrong directory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tongdai import __version__
from tongdai.admin.cli import add_commands as admin_commands
from tongdai.admin.service import AdminService, Principal
from tongdai.flows.cli import add_commands as flow_commands
from tongdai.keys import store_key
from tongdai.media.prompt_cli import add_commands as prompt_commands
from tongdai.settings import Settings, SettingsError, find_config, load_settings, source_of
from tongdai.store.engine import create_engine, current_revision
from tongdai.store.errors import StoreError
from tongdai.store.sql import SqlStore, open_store
from tongdai.webhooks.cli import add_commands as webhook_commands

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


def _trunk_text(d: dict[str, Any]) -> dict[str, Any]:
    """A trunk for people: an empty ``match`` serves every number."""
    return {**d, "match": ",".join(d["match"]) or "all"}


# Commands ------------------------------------------------------------------------
# Each parses its arguments, calls the admin service (tongdai.admin.service: the rules,
# shared with the admin API and the console) and renders what it returns.


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "cli"


def service(store: SqlStore, s: Settings) -> AdminService:
    """The admin service as the CLI uses it: every app, audited as ``cli:USER``."""
    return AdminService(store=store, settings=s, principal=Principal(actor=_actor()))


def _password(value: str) -> str:
    if value == "-":  # keeps the password out of the shell history and ps
        value = sys.stdin.readline().rstrip("\r\n")
    return value


async def app_create(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).create_app(a.name)
    return d, _fields(d) + "\nKeep the app secret: it is shown only now."


async def app_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = await service(store, s).list_apps()
    cols = ["app_id", "name", "record_calls", "default_did"]
    return rows, _table(rows, cols, "no apps yet (tongdai app create NAME)")


async def app_rotate(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).rotate_secret(a.app_id)
    return d, _fields(d) + "\nThe old secret and the app's websocket tokens no longer work."


async def app_delete(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).delete_app(a.app_id)
    return d, f"app {a.app_id} and everything it owned deleted"


async def app_set(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    record = None if a.record_calls is None else a.record_calls == "yes"
    d = await service(store, s).update_app(a.app_id, record_calls=record,
                                           default_did=a.default_did)
    return d, _fields(d)


async def device_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).add_device(a.app, a.sip_user, _password(a.password),
                                           display_name=a.name or "", extension=a.extension)
    return d, _fields(d)


async def device_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = await service(store, s).list_devices(a.app)
    flat = [r | {"online": "online" if r["online"] else "offline"} for r in rows]
    cols = ["sip_user", "extension", "display_name", "online", "app_id", "realm"]
    return rows, _table(flat, cols, "no devices")


async def device_passwd(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).set_device_password(a.sip_user, _password(a.password))
    return d, f"password of {d['sip_user']} changed (realm {d['realm']})"


async def device_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).remove_device(a.sip_user, a.app)
    return d, f"device {a.sip_user} removed"


async def did_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).add_did(a.app, a.number, a.device)
    return d, f"DID {d['number']} now rings {d['sip_user']}"


async def did_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = await service(store, s).list_dids(a.app)
    return rows, _table(rows, ["number", "sip_user", "app_id"], "no DIDs")


async def did_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).remove_did(a.number, a.app)
    return d, f"DID {d['removed']} removed"


async def trunk_add(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).add_trunk(
        a.app, a.name, host=a.host, port=a.port, transport=a.transport,
        username=a.username, password=a.password, prefix=a.prefix, strip=a.strip,
        match=a.match, priority=a.priority,
    )
    return d, _fields(_trunk_text(d))


async def trunk_set(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).update_trunk(a.app, a.name, match=a.match,
                                             priority=a.priority)
    return d, _fields(_trunk_text(d))


async def trunk_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = await service(store, s).list_trunks(a.app)
    cols = ["name", "host", "port", "transport", "match", "priority", "username", "prefix",
            "strip", "app_id"]
    return rows, _table([_trunk_text(r) for r in rows], cols, "no trunks")


async def trunk_remove(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    d = await service(store, s).remove_trunk(a.app, a.name)
    return d, f"trunk {a.name} removed"


async def registration_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    rows = await service(store, s).list_registrations(a.app)
    cols = ["sip_user", "contact", "source", "transport", "expires_in", "user_agent"]
    return rows, _table(rows, cols, "no live registrations")


async def cdr_list(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    _, rows = await service(store, s).list_cdrs(a.app, limit=a.limit)
    flat = [
        {**r, "caller": r["caller"]["number"], "callee": r["callee"]["number"]} for r in rows
    ]
    cols = ["call_id", "unix_timestamp", "caller", "callee", "class", "direction",
            "status_detail", "duration_seconds", "billing_seconds", "recording"]
    return rows, _table(flat, cols, "no calls")


async def db_upgrade(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    # open_store has already created or migrated it; report where the schema stands.
    d = {"database": _redacted(s.db_url), "revision": await store.schema_revision()}
    return d, f"the database is at schema revision {d['revision']}"


async def db_reset_secrets(store: SqlStore, s: Settings, a: argparse.Namespace) -> Result:
    # For a lost secrets/store.key: what it sealed is gone; issue what can be issued.
    done = await store.reseal(replace_unreadable=True)
    apps = [{"app_id": app_id, "app_secret": app.app_secret.reveal()}
            for app_id in done.new_secrets if (app := await store.get_app(app_id)) is not None]
    trunks = [{"app_id": app_id, "trunk": name} for app_id, name in done.dropped_passwords]
    d = {"new_app_secrets": apps, "trunks_without_password": trunks}
    if not apps and not trunks:
        return d, "every secret opens with this data dir's secrets/store.key; nothing changed"
    lines = [f"app {x['app_id']}: new app_secret {x['app_secret']}" for x in apps]
    lines += [f"trunk {x['trunk']} of app {x['app_id']}: password dropped; remove and add "
              "the trunk again with its password" for x in trunks]
    if apps:
        lines.append("Give each integrator its new app secret: it is shown only now.")
    return d, "\n".join(lines)


# Parser ----------------------------------------------------------------------------

# SIP over WebSocket for the softphone page when `tongdai demo` is not told otherwise.
DEMO_WS_PORT = 5066
CONFIG_HELP = "a TOML settings file (default: $TONGDAI_CONFIG, else ./tongdai.toml if present)"
DATA_DIR_HELP = ("where the database, recordings and secrets live (default: $TONGDAI_DATA_DIR,"
                 " else the config file's data_dir, else ./tongdai-data)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tongdai", description="tongdai cloud PBX")
    p.add_argument("--version", action="version", version=f"tongdai {__version__}")
    p.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    p.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    groups = p.add_subparsers(dest="group", metavar="COMMAND", required=True)

    def leaf(sub: Any, name: str, handler: Handler | None, help: str, *,
             creates: bool = False) -> Any:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON value")
        # Also accepted after the command (tongdai app list --data-dir DIR).
        c.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                       help=CONFIG_HELP)
        c.add_argument("--data-dir", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                       help=DATA_DIR_HELP)
        c.set_defaults(handler=handler, creates=creates)
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
    _routing_flags(c, default=True)
    c = leaf(g, "set", trunk_set, "change which numbers a trunk carries and in which order")
    c.add_argument("name")
    c.add_argument("--app", required=True, metavar="APP_ID")
    _routing_flags(c, default=False)
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

    webhook_commands(group("webhook", "webhooks: an app's events POSTed, signed, to URLs"),
                     leaf)
    prompt_commands(group("prompt", "prompts: audio that call flows play to callers"), leaf)
    flow_commands(group, leaf)

    admin_commands(group, leaf)

    g = group("db", "the database")
    leaf(g, "init", db_upgrade, "create the database (or bring it up to date)", creates=True)
    leaf(g, "upgrade", db_upgrade, "migrate the schema to the newest version", creates=True)
    leaf(g, "reset-secrets", db_reset_secrets,
         "after losing secrets/store.key: new app secrets, trunk passwords dropped"
         ).set_defaults(reseal=False)
    return p


def _routing_flags(c: Any, *, default: bool) -> None:
    c.add_argument(
        "--match", metavar="PREFIXES", default="" if default else None,
        help="the number prefixes this trunk serves, comma-separated, in the national "
             "form (09,03; 1900; +1; + for every foreign number); '' or none: every number")
    c.add_argument(
        "--priority", type=int, metavar="N", default=0 if default else None,
        help="0 to 1000; among trunks matching a number equally well, lower is tried "
             "first (default 0), then the trunk added first")


# Entry point ------------------------------------------------------------------------


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    """The first line of the driver's own message (SQLAlchemy adds pages of context)."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.db_url)
    db = url.database or ""
    if url.get_backend_name() != "sqlite" or db in ("", ":memory:") or db.startswith("file:"):
        return None
    return Path(db)


def _where(settings: Settings, origin: str) -> str:
    """The database a command uses, and why that one: for its human output."""
    path = _sqlite_file(settings)
    if path is not None and not settings.database_url:
        return f"{path} (data dir from {origin})"
    return _redacted(settings.db_url)


async def _has_schema(url: str) -> bool:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(current_revision) is not None
    finally:
        await engine.dispose()


async def _run(
    handler: Handler, settings: Settings, args: argparse.Namespace, origin: str
) -> Result:
    try:
        if not args.creates:
            # Refuse, rather than create an empty database somewhere unexpected: a
            # missing database almost always means the wrong directory or settings.
            path = _sqlite_file(settings)
            if (path is not None and not path.is_file()) or not await _has_schema(
                    settings.db_url):
                raise CliError(
                    f"there is no tongdai database at {_where(settings, origin)}; point "
                    "--data-dir, TONGDAI_DATA_DIR or a config file at the server's data dir,"
                    " or create a database with 'tongdai db init'"
                )
        store = await open_store(settings.db_url, key=store_key(settings.data_dir),
                                 reseal=getattr(args, "reseal", True))
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
    config = find_config(args.config)
    overrides = {} if args.data_dir is None else {"data_dir": args.data_dir}
    try:
        settings = load_settings(config, **overrides)
    except SettingsError as exc:
        return _fail(str(exc))
    if args.group in ("serve", "demo"):
        from tongdai import server  # the whole PBX; only loaded to run it

        if args.group == "demo" and source_of("sip_ws_port", config) == "the default":
            # The demo's softphone page (/phone) registers over SIP/WebSocket.
            settings = settings.model_copy(update={"sip_ws_port": DEMO_WS_PORT})
        return server.main(settings, demo=args.group == "demo" or args.demo)
    origin = "--data-dir" if args.data_dir is not None else source_of("data_dir", config)
    try:
        value, text = asyncio.run(_run(args.handler, settings, args, origin))
    except (StoreError, CliError) as exc:
        return _fail(str(exc))
    except SQLAlchemyError as exc:
        return _fail(f"database error: {_reason(exc)}")
    if args.json:
        print(json.dumps(value, ensure_ascii=False))
    else:
        print(f"database: {_where(settings, origin)}\n{text}")
    return 0
