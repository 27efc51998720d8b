"""The one service layer of administration: apps, devices, DIDs, trunks, webhooks,
registrations, live calls, CDRs, admin keys, operators and the audit log.

Every rule lives here once; the CLI, the admin API and the console call it. A
``Principal`` says who is acting (for the audit log) and which app it is confined to:
a tenant's principal gets ``NotFound`` for another app's objects, exactly as if they
did not exist, and ``Denied`` for what only an operator of every app may do. Each
change is written to the audit log after it succeeded (who, what, when).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tongdai.admin import views
from tongdai.admin.credentials import (
    MIN_OPERATOR_PASSWORD,
    hash_password,
    new_key,
)
from tongdai.admin.errors import Denied
from tongdai.pbx.credentials import digest_keys
from tongdai.settings import Settings
from tongdai.store import validate
from tongdai.store.errors import Invalid, NotFound
from tongdai.store.history import CdrQuery
from tongdai.store.sql import SqlStore, no_app
from tongdai.webhooks.bindings import BadBindings, parse_bindings
from tongdai.webhooks.guard import Guard, Refused
from tongdai.webhooks.signing import new_secret
from tongdai.webhooks.store import STATUSES, EndpointRec

if TYPE_CHECKING:
    from tongdai.admin.flows import FlowAdmin
    from tongdai.admin.prompts import PromptAdmin

# Softphones are reachable from the internet; short passwords invite toll fraud.
MIN_PASSWORD = 8
MAX_LIMIT = 1000
# Live calls as the call core knows them, as dicts (see ``admin/live.py``).
LiveCallSource = Callable[[], Sequence[dict[str, Any]]]


class QueueProbe(Protocol):
    """The queues' state in the running server (``admin/live.AcdProbe``)."""

    def waiting(self, app_id: str, name: str) -> int: ...
    def agent_state(self, sip_user: str, paused: Collection[str]) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who acts: ``actor`` names them in the audit log ("cli:root", "key:ab12...",
    "operator:lan"); ``app_id`` confines them to one app (None: every app)."""

    actor: str
    app_id: str | None = None


def check_password(value: str) -> str:
    if len(value) < MIN_PASSWORD:
        raise Invalid(f"the password must be at least {MIN_PASSWORD} characters")
    return value


def _limit(value: int, what: str = "--limit") -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise Invalid(f"{what} must be 1 to {MAX_LIMIT}")
    return value


class AdminService:
    def __init__(self, *, store: SqlStore, settings: Settings, principal: Principal,
                 live_calls: LiveCallSource | None = None, queues: QueueProbe | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.queue_probe = queues
        self.store = store
        self.settings = settings
        self.principal = principal
        self._live = live_calls
        self.clock = clock

    # Who may touch what ----------------------------------------------------------

    @property
    def scope(self) -> str | None:
        return self.principal.app_id

    def _everywhere(self, what: str) -> None:
        if self.scope is not None:
            raise Denied(f"a key or operator of one app cannot {what}")

    async def _app(self, app_id: str) -> str:
        """``app_id``, if it exists and the principal may see it."""
        if (self.scope is not None and app_id != self.scope) or \
                await self.store.get_app(app_id) is None:
            raise no_app(app_id)
        return app_id

    async def _filter(self, app_id: str | None) -> str | None:
        """The app a listing is restricted to: the one asked for (checked), or the
        principal's own."""
        if app_id is not None:
            return await self._app(app_id)
        return self.scope

    async def scoped(self, app_id: str) -> str:
        """``app_id`` for a change: a tenant's principal may only name its own app."""
        if self.scope is not None:
            await self._app(app_id)
        return app_id

    async def listing(self, app_id: str | None) -> str | None:
        return await self._filter(app_id)

    async def audit(self, action: str, app_id: str | None, target: str = "",
                    **detail: Any) -> None:
        await self._audit(action, app_id, target, **detail)

    @property
    def prompts(self) -> PromptAdmin:
        """An app's prompts."""
        from tongdai.admin.prompts import PromptAdmin

        return PromptAdmin(self)

    @property
    def flows(self) -> FlowAdmin:
        """Call flows, queues and agents."""
        from tongdai.admin.flows import FlowAdmin

        return FlowAdmin(self)

    async def _audit(self, action: str, app_id: str | None, target: str = "",
                     **detail: Any) -> None:
        await self.store.add_audit(actor=self.principal.actor, app_id=app_id, action=action,
                                   target=target, detail=detail, at=self.clock())

    # Apps ------------------------------------------------------------------------

    async def create_app(self, name: str) -> dict[str, Any]:
        """The new app with its secret (shown only now)."""
        self._everywhere("create apps")
        a = await self.store.create_app(name)
        await self._audit("app.created", a.app_id, a.app_id, name=a.name)
        return views.app(a, secret=True)

    async def list_apps(self) -> list[dict[str, Any]]:
        return [views.app(a) for a in await self.store.list_apps()
                if self.scope is None or a.app_id == self.scope]

    async def get_app(self, app_id: str) -> dict[str, Any]:
        a = await self.store.get_app(await self._app(app_id))
        if a is None:
            raise no_app(app_id)
        return views.app(a)

    async def rotate_secret(self, app_id: str) -> dict[str, Any]:
        a = await self.store.rotate_secret(await self._app(app_id))
        await self._audit("app.secret_rotated", a.app_id, a.app_id)
        return {"app_id": a.app_id, "app_secret": a.app_secret.reveal()}

    async def delete_app(self, app_id: str) -> dict[str, Any]:
        self._everywhere("delete apps")
        await self.store.delete_app(app_id)
        await self._audit("app.deleted", app_id, app_id)
        return {"deleted": app_id}

    async def update_app(self, app_id: str, *, record_calls: bool | None = None,
                         default_did: str | None = None) -> dict[str, Any]:
        a = await self.store.update_app(await self._app(app_id), record_calls=record_calls,
                                        default_did=default_did)
        await self._audit("app.updated", a.app_id, a.app_id, record_calls=record_calls,
                          default_did=default_did)
        return views.app(a)

    # Devices -----------------------------------------------------------------------

    async def add_device(self, app_id: str, sip_user: str, password: str, *,
                         display_name: str = "", extension: str | None = None
                         ) -> dict[str, Any]:
        if self.scope is not None:
            await self._app(app_id)
        keys = digest_keys(sip_user, self.settings.domain, check_password(password))
        d = await self.store.add_device(app_id, sip_user, keys, display_name=display_name,
                                        extension=extension)
        await self._audit("device.added", d.app_id, d.sip_user, extension=d.extension,
                          display_name=d.display_name)
        return views.device(d)

    async def list_devices(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """The devices with ``online`` and their number of live ``bindings``.

        The server writes its bindings behind to the registrations table (within about
        a second), which is what another process can see."""
        app = await self._filter(app_id)
        bindings: dict[str, int] = {}
        for r in await self.store.load_registrations(self.clock()):
            bindings[r.sip_user] = bindings.get(r.sip_user, 0) + 1
        return [
            views.device(d) | {"online": d.sip_user in bindings,
                               "bindings": bindings.get(d.sip_user, 0)}
            for d in await self.store.list_devices(app)
        ]

    async def get_device(self, sip_user: str) -> dict[str, Any]:
        d = await self.store.get_device(sip_user)
        if d is None or (self.scope is not None and d.app_id != self.scope):
            raise NotFound(f"device {sip_user!r} does not exist")
        return views.device(d)

    async def set_device_password(self, sip_user: str, password: str) -> dict[str, Any]:
        keys = digest_keys(sip_user, self.settings.domain, check_password(password))
        d = await self.store.set_keys(sip_user, keys, app_id=self.scope)
        await self._audit("device.password_set", d.app_id, d.sip_user)
        return views.device(d)

    async def remove_device(self, sip_user: str, app_id: str | None = None
                            ) -> dict[str, Any]:
        owner = await self._owner(app_id)
        if app_id is not None and owner is None:
            raise NotFound(f"device {sip_user!r} does not exist")
        d = await self.store.get_device(sip_user)
        await self.store.remove_device(sip_user, app_id=owner)
        await self._audit("device.removed", d.app_id if d else owner, sip_user)
        return {"removed": sip_user}

    # DIDs --------------------------------------------------------------------------

    async def add_did(self, app_id: str, number: str, sip_user: str) -> dict[str, Any]:
        if self.scope is not None:
            await self._app(app_id)
        d = await self.store.add_did(app_id, number, sip_user)
        await self._audit("did.added", d.app_id, d.number, sip_user=d.sip_user)
        return views.did(d)

    async def list_dids(self, app_id: str | None = None) -> list[dict[str, Any]]:
        return [views.did(d) for d in await self.store.list_dids(await self._filter(app_id))]

    async def remove_did(self, number: str, app_id: str | None = None) -> dict[str, Any]:
        key = validate.did_number(number)
        owner = await self._owner(app_id)
        before = await self.store.get_did(key)
        if owner is None and app_id is not None:
            raise NotFound(f"DID {key} does not exist")
        await self.store.remove_did(key, app_id=owner)
        await self._audit("did.removed", before.app_id if before else owner, key)
        return {"removed": key}

    async def _owner(self, app_id: str | None) -> str | None:
        """For objects named globally (a DID, a webhook): the app they must belong to.
        A tenant asking about another app gets None with ``app_id`` set: not found."""
        if self.scope is None:
            return app_id
        if app_id is not None and app_id != self.scope:
            return None
        return self.scope

    # Trunks ------------------------------------------------------------------------

    async def add_trunk(self, app_id: str, name: str, *, host: str, port: int = 5060,
                        transport: str = "udp", username: str | None = None,
                        password: str | None = None, prefix: str = "", strip: int = 0,
                        match: str | Sequence[str] = "", priority: int = 0
                        ) -> dict[str, Any]:
        if self.scope is not None:
            await self._app(app_id)
        t = await self.store.add_trunk(
            app_id, name, host=host, port=port, transport=transport, username=username,
            password=password, prefix=prefix, strip=strip, routes=match, priority=priority)
        await self._audit("trunk.added", t.app_id, t.name, host=t.host, port=t.port,
                          transport=t.transport, match=list(t.routes), priority=t.priority)
        return views.trunk(t)

    async def update_trunk(self, app_id: str, name: str, *,
                           match: str | Sequence[str] | None = None,
                           priority: int | None = None) -> dict[str, Any]:
        if match is None and priority is None:
            raise Invalid("nothing to change: give --match and/or --priority")
        t = await self.store.update_trunk(name, app_id=await self._scoped(app_id),
                                          routes=match, priority=priority)
        await self._audit("trunk.updated", t.app_id, t.name, match=list(t.routes),
                          priority=t.priority)
        return views.trunk(t)

    async def _scoped(self, app_id: str) -> str:
        if self.scope is not None:
            await self._app(app_id)
        return app_id

    async def list_trunks(self, app_id: str | None = None) -> list[dict[str, Any]]:
        return [views.trunk(t) for t in await self.store.list_trunks(
            await self._filter(app_id))]

    async def remove_trunk(self, app_id: str, name: str) -> dict[str, Any]:
        await self.store.remove_trunk(name, app_id=await self._scoped(app_id))
        await self._audit("trunk.removed", app_id, name)
        return {"removed": name}

    # What is happening -------------------------------------------------------------

    async def list_registrations(self, app_id: str | None = None) -> list[dict[str, Any]]:
        now = self.clock()
        regs = await self.store.load_registrations(now)
        app = await self._filter(app_id)
        if app is not None:
            mine = {d.sip_user for d in await self.store.list_devices(app)}
            regs = [r for r in regs if r.sip_user in mine]
        return [views.registration(r, now) for r in regs]

    async def list_cdrs(self, app_id: str, *, limit: int = 50, offset: int = 0,
                        start_ts: float = 0.0, end_ts: float | None = None,
                        number: str | None = None, status: str | None = None,
                        direction: str | None = None, device: str | None = None
                        ) -> tuple[int, list[dict[str, Any]]]:
        """(total, page) of an app's calls, newest first, with the filters given."""
        app = await self._app(app_id)
        end = end_ts if end_ts is not None else self.clock() + 86400
        if number is None and status is None and direction is None and device is None:
            total, cdrs = await self.store.list_cdrs(app, start_ts, end, limit=limit,
                                                     offset=offset)
        else:
            total, cdrs = await self.store.search_cdrs(
                CdrQuery(app_id=app, start_ts=start_ts, end_ts=end, number=number,
                         status_detail=status, direction=direction, device=device),
                limit=limit, offset=offset)
        return total, [views.cdr(c) for c in cdrs]

    async def live_calls(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """The calls in progress on this server (empty where the call core is not
        in this process, as for the CLI)."""
        app = await self._filter(app_id)
        calls = list(self._live()) if self._live is not None else []
        return [c for c in calls if app is None or c["app_id"] == app]

    # Webhooks ----------------------------------------------------------------------

    async def _webhook(self, webhook_id: str, app_id: str | None) -> EndpointRec:
        owner = await self._owner(app_id)
        e = await self.store.get_webhook(webhook_id)
        if e is None or (app_id is not None and owner is None) or \
                (owner is not None and e.app_id != owner):
            raise NotFound(f"webhook {webhook_id!r} does not exist (see tongdai webhook list)")
        return e

    async def add_webhook(self, app_id: str, url: str, events: str = "*") -> dict[str, Any]:
        """The new webhook with its signing secret (shown only now)."""
        await self._app(app_id)
        try:
            bindings = parse_bindings(events)
            # Refused now rather than at the first event (the sender checks again each
            # time: what the name resolves to may change).
            await Guard(allow_private=self.settings.webhook_allow_private).target(url)
        except (BadBindings, Refused) as exc:
            raise Invalid(str(exc)) from None
        secret = new_secret()
        e = await self.store.add_webhook(app_id, url, bindings, secret=secret,
                                         now=self.clock())
        await self._audit("webhook.added", app_id, e.endpoint_id, url=url,
                          events=",".join(e.events))
        return {**views.webhook(e), "secret": secret}

    async def list_webhooks(self, app_id: str | None = None) -> list[dict[str, Any]]:
        owner = await self._owner(app_id)
        if app_id is not None and owner is None:
            raise no_app(app_id)
        return [views.webhook(e) for e in await self.store.list_webhooks(owner)]

    async def enable_webhook(self, webhook_id: str, app_id: str | None = None, *,
                             enabled: bool = True) -> dict[str, Any]:
        e = await self._webhook(webhook_id, app_id)
        if enabled:
            e = await self.store.enable_webhook(webhook_id)
        else:
            e = await self.store.enable_webhook(webhook_id, enabled=False,
                                                reason="disabled by an administrator")
        await self._audit("webhook.enabled" if enabled else "webhook.disabled", e.app_id,
                          webhook_id)
        return views.webhook(e)

    async def remove_webhook(self, webhook_id: str, app_id: str | None = None
                             ) -> dict[str, Any]:
        e = await self._webhook(webhook_id, app_id)
        await self.store.remove_webhook(webhook_id)
        await self._audit("webhook.removed", e.app_id, webhook_id)
        return {"removed": webhook_id}

    async def list_deliveries(self, app_id: str | None = None, webhook_id: str | None = None,
                              status: str | None = None, limit: int = 50
                              ) -> list[dict[str, Any]]:
        if webhook_id is not None:
            await self._webhook(webhook_id, app_id)
        _limit(limit)
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}")
        owner = await self._owner(app_id)
        if app_id is not None and owner is None:
            raise no_app(app_id)
        return [views.delivery(d) for d in await self.store.list_deliveries(
            app_id=owner, endpoint_id=webhook_id, status=status, limit=limit)]

    async def redeliver(self, delivery_id: str) -> tuple[dict[str, Any], bool]:
        """(the delivery, queued again; whether its webhook is enabled)."""
        from tongdai.pbx.recovery import node_id  # the server's name: it sends it

        if self.scope is not None and await self.store.delivery_app(delivery_id) != self.scope:
            raise NotFound(f"delivery {delivery_id!r} does not exist "
                           "(see tongdai webhook deliveries)")
        d = await self.store.redeliver(delivery_id, node=node_id(self.settings))
        e = await self.store.get_webhook(d.endpoint_id)
        await self._audit("webhook.redelivered", e.app_id if e else None, delivery_id)
        return views.delivery(d), e is None or e.enabled

    # Admin keys and operators ------------------------------------------------------

    async def create_admin_key(self, app_id: str | None = None, label: str = ""
                               ) -> dict[str, Any]:
        """A new key (shown only now); a tenant may only make keys of its own app."""
        if app_id is None:
            self._everywhere("create a key for every app")
        else:
            await self._app(app_id)
        label = validate.text("label", label, max_len=100, required=False)
        key_id, key, digest = new_key()
        k = await self.store.add_admin_key(key_id, digest, app_id=app_id, label=label)
        await self._audit("admin_key.created", app_id, key_id, label=label)
        return {**views.admin_key(k), "key": key}

    async def list_admin_keys(self, app_id: str | None = None) -> list[dict[str, Any]]:
        return [views.admin_key(k) for k in await self.store.list_admin_keys(
            await self._filter(app_id))]

    async def revoke_admin_key(self, key_id: str) -> dict[str, Any]:
        k = await self.store.revoke_admin_key(key_id, app_id=self.scope)
        await self._audit("admin_key.revoked", k.app_id, key_id)
        return views.admin_key(k)

    async def add_operator(self, name: str, password: str, app_id: str | None = None
                           ) -> dict[str, Any]:
        if app_id is None:
            self._everywhere("add an operator of every app")
        else:
            await self._app(app_id)
        _operator_name(name)
        if len(password) < MIN_OPERATOR_PASSWORD:
            raise Invalid(f"an operator's password must be at least {MIN_OPERATOR_PASSWORD}"
                          " characters")
        o = await self.store.add_operator(name, hash_password(password), app_id=app_id)
        await self._audit("operator.added", app_id, name)
        return views.operator(o)

    async def list_operators(self) -> list[dict[str, Any]]:
        return [views.operator(o) for o in await self.store.list_operators(self.scope)]

    async def remove_operator(self, name: str) -> dict[str, Any]:
        o = await self.store.get_operator(name)
        await self.store.remove_operator(name, app_id=self.scope)
        await self._audit("operator.removed", o.app_id if o else None, name)
        return {"removed": name}

    async def audit_log(self, app_id: str | None = None, *, limit: int = 100,
                        before: int | None = None) -> list[dict[str, Any]]:
        _limit(limit, "limit")
        return [views.audit(a) for a in await self.store.list_audit(
            app_id=await self._filter(app_id), limit=limit, before=before)]


def _operator_name(name: str) -> str:
    if not validate.SIP_USER.fullmatch(name):
        raise Invalid(f"operator name {name!r} must be 1 to 64 letters, digits, dots, "
                      "dashes or underscores")
    return name
