"""The console's administration pages, each one a ``Resource``: a table of rows listed
by the admin service, a form that creates (or changes) one, and buttons acting on a
row (remove, enable, pause, redeliver ...). One template (``resource.html``) and one
route helper (``Console.resource``) serve them all, so each page is only this
description of which service calls it makes.

The service decides who may do what: a tenant's principal gets the same refusals as
through the CLI or the admin API. Pages that only make sense across every app
(``everywhere``) are not offered to a tenant at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tongdai.admin.service import AdminService
from tongdai.flows.store import STRATEGIES
from tongdai.store.errors import Invalid, NotFound

Form = dict[str, str]
Row = dict[str, Any]
Lister = Callable[[AdminService, str], Awaitable[list[Row]]]
Creator = Callable[[AdminService, str, Form], Awaitable[Row]]
RowAction = Callable[[AdminService, str, str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a resource's form; ``label`` is a word of the catalogue."""

    name: str
    label: str
    kind: str = "text"  # text | password | number | select | textarea
    required: bool = False
    choices: tuple[str, ...] = ()
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """A button on each row; shown where ``when(row)`` holds."""

    label: str
    run: RowAction
    when: Callable[[Row], bool] = lambda row: True
    danger: bool = False


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    title: str  # word of the catalogue
    key: str  # the row's column naming it in the action URLs
    columns: tuple[tuple[str, str], ...]  # (row key, word)
    list: Lister
    create: Creator | None = None
    fields: tuple[Field, ...] = ()
    actions: dict[str, Action] = field(default_factory=dict)
    # Values of the created object shown once (secrets are never shown again); an
    # action answering with all of them (a new secret) shows them too.
    once: tuple[str, ...] = ()
    everywhere: bool = False  # only for a principal of every app
    submit: str = "add"
    upload: bool = False  # a second form sends an audio file (console/upload.py)
    nav: bool = True  # in the header (else linked from another page)


# Form values -----------------------------------------------------------------------

def text(form: Form, name: str) -> str:
    return form.get(name, "").strip()


def optional(form: Form, name: str) -> str | None:
    return text(form, name) or None


def number(form: Form, name: str, default: int | None = None) -> int | None:
    value = text(form, name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{name} must be a whole number, not {value!r}") from None


def listed(form: Form, name: str) -> list[str] | None:
    value = text(form, name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _scope(svc: AdminService, app_id: str, form: Form) -> str | None:
    """The app a key or operator is made for: this app, or every app (refused by the
    service for a tenant)."""
    return None if form.get("scope") == "all" else app_id


# Apps ------------------------------------------------------------------------------

async def _apps(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_apps()


async def _app_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.create_app(text(form, "name"))


async def _app_rotate(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.rotate_secret(key)


async def _app_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.delete_app(key)


async def _settings(svc: AdminService, app_id: str) -> list[Row]:
    return [await svc.get_app(app_id)]


async def _settings_set(svc: AdminService, app_id: str, form: Form) -> Row:
    """``tongdai app set``: empty fields keep a value."""
    record = {"yes": True, "no": False}.get(text(form, "record_calls"))
    return await svc.update_app(app_id, record_calls=record,
                                default_did=optional(form, "default_did"))


# DIDs ------------------------------------------------------------------------------

async def _dids(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_dids(app_id)


async def _did_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.add_did(app_id, text(form, "number"), text(form, "sip_user"))


async def _did_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.remove_did(key, app_id)


# Trunks ----------------------------------------------------------------------------

async def _trunks(svc: AdminService, app_id: str) -> list[Row]:
    rows = await svc.list_trunks(app_id)
    return [r | {"match": ",".join(r["match"]) or "*"} for r in rows]


async def _trunk_set(svc: AdminService, app_id: str, form: Form) -> Row:
    """Adds the trunk, or for a trunk of that name already there changes its routes
    and priority (``tongdai trunk set``)."""
    name = text(form, "name")
    existing = {t["name"] for t in await svc.list_trunks(app_id)}
    if name in existing:
        return await svc.update_trunk(app_id, name, match=listed(form, "match"),
                                      priority=number(form, "priority"))
    return await svc.add_trunk(
        app_id, name, host=text(form, "host"), port=number(form, "port", 5060) or 5060,
        transport=text(form, "transport") or "udp", username=optional(form, "username"),
        password=form.get("password") or None, prefix=text(form, "prefix"),
        strip=number(form, "strip", 0) or 0, match=listed(form, "match") or "",
        priority=number(form, "priority", 0) or 0)


async def _trunk_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.remove_trunk(app_id, key)


# Admin keys and operators ----------------------------------------------------------

async def _keys(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_admin_keys(svc.scope)


async def _key_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.create_admin_key(_scope(svc, app_id, form), text(form, "label"))


async def _key_revoke(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.revoke_admin_key(key)


async def _operators(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_operators()


async def _operator_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.add_operator(text(form, "name"), form.get("password", ""),
                                  _scope(svc, app_id, form))


async def _operator_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.remove_operator(key)


async def _audit(svc: AdminService, app_id: str) -> list[Row]:
    rows = await svc.audit_log(None, limit=200)
    return [r | {"detail": ", ".join(f"{k}={v}" for k, v in (r["detail"] or {}).items())}
            for r in rows]


# Prompts ---------------------------------------------------------------------------

async def _prompts(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.prompts.list(app_id)


async def _prompt_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.prompts.add(app_id, text(form, "name"), text=text(form, "text"),
                                 lang=text(form, "lang") or "vi")


async def _prompt_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.prompts.remove(app_id, key)


# Webhooks and their deliveries -----------------------------------------------------

async def _webhooks(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_webhooks(app_id)


async def _webhook_create(svc: AdminService, app_id: str, form: Form) -> Row:
    return await svc.add_webhook(app_id, text(form, "url"), text(form, "events") or "*")


async def _webhook_enable(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.enable_webhook(key, app_id, enabled=True)


async def _webhook_disable(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.enable_webhook(key, app_id, enabled=False)


async def _webhook_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.remove_webhook(key, app_id)


async def _deliveries(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_deliveries(app_id, limit=100)


async def _redeliver(svc: AdminService, app_id: str, key: str) -> Any:
    # The page's app only (the service confines a tenant to its own already).
    if await svc.store.delivery_app(key) != app_id:
        raise NotFound(f"delivery {key!r} does not exist")
    return await svc.redeliver(key)


# Queues and agents -----------------------------------------------------------------

async def _queues(svc: AdminService, app_id: str) -> list[Row]:
    return [q | {"agents": ",".join(q["agents"])}
            for q in await svc.flows.list_queues(app_id)]


async def _queue_set(svc: AdminService, app_id: str, form: Form) -> Row:
    """Adds the queue, or changes the one of that name (empty fields keep a value)."""
    name = text(form, "name")
    agents, strategy = listed(form, "agents"), optional(form, "strategy")
    numbers = {k: number(form, k) for k in ("max_wait", "max_length", "ring_timeout",
                                            "wrapup")}
    if name in {q["name"] for q in await svc.flows.list_queues(app_id)}:
        return await svc.flows.update_queue(app_id, name, agents=agents, strategy=strategy,
                                            **numbers)
    return await svc.flows.add_queue(app_id, name, agents, strategy=strategy, **numbers)


async def _queue_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.flows.remove_queue(app_id, key)


async def _agents(svc: AdminService, app_id: str) -> list[Row]:
    """Each agent of the app's queues once, with its queues and its state."""
    agents: dict[str, Row] = {}
    for q in await svc.flows.queue_status(app_id):
        for a in q["agents"]:
            row = agents.setdefault(a["sip_user"], {"sip_user": a["sip_user"],
                                                    "queues": [], "state": a["state"]})
            row["queues"].append(q["name"])
    return [r | {"queues": ",".join(r["queues"]), "state": r["state"] or "-"}
            for r in agents.values()]


async def _pause(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.flows.pause_agent(app_id, key, True)


async def _unpause(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.flows.pause_agent(app_id, key, False)


# Registrations, device passwords and flows ------------------------------------------

async def _registrations(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_registrations(app_id)


async def _devices(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.list_devices(app_id)


async def _password_set(svc: AdminService, app_id: str, form: Form) -> Row:
    """``tongdai device passwd``, for a device of the page's app only."""
    sip_user = text(form, "sip_user")
    if (await svc.get_device(sip_user))["app_id"] != app_id:
        raise NotFound(f"device {sip_user!r} does not exist")
    return await svc.set_device_password(sip_user, form.get("password", ""))


async def _flows(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.flows.list_flows(app_id)


async def _flow_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.flows.remove_flow(app_id, key)


async def _extension_flows(svc: AdminService, app_id: str) -> list[Row]:
    return await svc.flows.list_extension_flows(app_id)


async def _extension_flow_remove(svc: AdminService, app_id: str, key: str) -> Any:
    return await svc.flows.remove_extension_flow(app_id, key)


_SCOPE = Field("scope", "scope", "select", choices=("app", "all"))

RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("apps", "apps", "app_id",
             (("app_id", "app_id"), ("name", "name"), ("record_calls", "record_calls"),
              ("default_did", "default_did"), ("created_at", "created")),
             _apps, _app_create, (Field("name", "name", required=True),),
             {"rotate": Action("rotate_secret", _app_rotate),
              "remove": Action("remove", _app_remove, danger=True)},
             once=("app_id", "app_secret"), everywhere=True),
    Resource("settings", "app_settings", "app_id",
             (("app_id", "app_id"), ("name", "name"), ("record_calls", "record_calls"),
              ("default_did", "default_did")),
             _settings, _settings_set,
             (Field("record_calls", "record_calls", "select", choices=("", "yes", "no")),
              Field("default_did", "default_did")), submit="save"),
    Resource("dids", "dids", "number",
             (("number", "number"), ("sip_user", "sip_user")),
             _dids, _did_create,
             (Field("number", "number", required=True),
              Field("sip_user", "sip_user", required=True)),
             {"remove": Action("remove", _did_remove, danger=True)}),
    Resource("trunks", "trunks", "name",
             (("name", "name"), ("host", "host"), ("port", "port"),
              ("transport", "transport"), ("username", "username"), ("prefix", "prefix"),
              ("strip", "strip"), ("match", "match"), ("priority", "priority")),
             _trunks, _trunk_set,
             (Field("name", "name", required=True), Field("host", "host"),
              Field("port", "port", "number"),
              Field("transport", "transport", "select", choices=("udp", "tcp", "tls")),
              Field("username", "username"), Field("password", "password", "password"),
              Field("prefix", "prefix"), Field("strip", "strip", "number"),
              Field("match", "match", hint="match_hint"),
              Field("priority", "priority", "number")),
             {"remove": Action("remove", _trunk_remove, danger=True)},
             submit="add_or_change"),
    Resource("queues", "queues", "name",
             (("name", "name"), ("agents", "agents"), ("strategy", "strategy"),
              ("max_wait", "max_wait"), ("max_length", "max_length"),
              ("ring_timeout", "ring_timeout"), ("wrapup", "wrapup")),
             _queues, _queue_set,
             (Field("name", "name", required=True),
              Field("agents", "agents", hint="agents_hint"),
              Field("strategy", "strategy", "select", choices=("", *STRATEGIES)),
              Field("max_wait", "max_wait", "number"),
              Field("max_length", "max_length", "number"),
              Field("ring_timeout", "ring_timeout", "number"),
              Field("wrapup", "wrapup", "number")),
             {"remove": Action("remove", _queue_remove, danger=True)},
             submit="add_or_change"),
    Resource("agents", "agents", "sip_user",
             (("sip_user", "sip_user"), ("queues", "queues"), ("state", "state")),
             _agents, actions={
                 "pause": Action("pause", _pause, lambda r: r["state"] != "paused"),
                 "unpause": Action("unpause", _unpause, lambda r: r["state"] == "paused")}),
    Resource("prompts", "prompts", "name",
             (("name", "name"), ("seconds", "seconds"), ("source", "source")),
             _prompts, _prompt_create,
             (Field("name", "name", required=True),
              Field("text", "prompt_text", "textarea", required=True),
              Field("lang", "language_code", "select", choices=("vi", "en"))),
             {"remove": Action("remove", _prompt_remove, lambda r: r["source"] != "built-in",
                               danger=True)}, upload=True),
    Resource("hooks", "webhooks", "webhook_id",
             (("webhook_id", "webhook_id"), ("url", "url"), ("events", "events"),
              ("enabled", "enabled"), ("failures", "failures"),
              ("disabled_reason", "last_error")),
             _webhooks, _webhook_create,
             (Field("url", "url", required=True), Field("events", "events", hint="events_hint")),
             {"enable": Action("enable", _webhook_enable, lambda r: not r["enabled"]),
              "disable": Action("disable", _webhook_disable, lambda r: bool(r["enabled"])),
              "remove": Action("remove", _webhook_remove, danger=True)},
             once=("webhook_id", "secret"), nav=False),
    Resource("deliveries", "deliveries", "delivery_id",
             (("created_at", "when"), ("webhook_id", "webhook_id"), ("event", "event"),
              ("status", "status"), ("attempts", "attempts"), ("last_error", "last_error")),
             _deliveries, actions={"redeliver": Action("redeliver", _redeliver)},
             nav=False),
    Resource("keys", "admin_keys", "key_id",
             (("key_id", "key_id"), ("app_id", "app_id"), ("label", "label"),
              ("created_at", "created"), ("revoked", "revoked")),
             _keys, _key_create, (Field("label", "label"), _SCOPE),
             {"revoke": Action("revoke", _key_revoke, lambda r: not r["revoked"],
                               danger=True)},
             once=("key_id", "key")),
    Resource("operators", "operators", "name",
             (("name", "name"), ("app_id", "app_id"), ("created_at", "created")),
             _operators, _operator_create,
             (Field("name", "name", required=True),
              Field("password", "password", "password", required=True), _SCOPE),
             {"remove": Action("remove", _operator_remove, danger=True)}),
    Resource("audit", "audit", "seq",
             (("at", "when"), ("actor", "actor"), ("app_id", "app_id"),
              ("action", "action"), ("target", "target"), ("detail", "detail")),
             _audit),
    Resource("registrations", "registrations", "sip_user",
             (("sip_user", "sip_user"), ("contact", "contact"), ("source", "source"),
              ("transport", "transport"), ("expires_in", "expires_in"),
              ("user_agent", "user_agent")),
             _registrations),
    Resource("passwords", "device_passwords", "sip_user",
             (("sip_user", "sip_user"), ("display_name", "name")),
             _devices, _password_set,
             (Field("sip_user", "sip_user", required=True),
              Field("password", "password", "password", required=True)),
             submit="save"),
    Resource("flowlist", "flow_list", "did",
             (("did", "did"), ("name", "name"), ("version", "version"),
              ("updated_at", "updated")),
             _flows, actions={"remove": Action("remove", _flow_remove, danger=True)}),
    Resource("extflows", "ext_flow_list", "extension",
             (("extension", "extension"), ("name", "name"), ("version", "version"),
              ("updated_at", "updated")),
             _extension_flows,
             actions={"remove": Action("remove", _extension_flow_remove, danger=True)}),
)}


def offered(principal_app: str | None) -> list[Resource]:
    """The pages a principal is offered (a tenant's: not those of every app)."""
    return [r for r in RESOURCES.values() if principal_app is None or not r.everywhere]
