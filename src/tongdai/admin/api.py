"""The admin REST API, ``/admin/v1/...``: the admin service over HTTP.

Authenticated by admin keys (``Authorization: Bearer tdk_...``, made with
``tongdai admin-key create``); a key of one app sees that app only, and another
app's objects answer 404 as if they did not exist. Every change is in the audit log
(``GET /admin/v1/audit``). Errors are JSON ``{"code", "message"}`` (``ADMIN_CODES``).
Its OpenAPI document is ``/admin/v1/openapi.json``, apart from the Open API's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tongdai.admin.auth import AdminAuth, AuthFailed
from tongdai.admin.errors import Denied
from tongdai.admin.service import AdminService, LiveCallSource, Principal, QueueProbe
from tongdai.settings import Settings
from tongdai.store.errors import Conflict, Invalid, NotFound
from tongdai.store.sql import SqlStore

MOUNT = "/admin"  # where the server mounts this app
PREFIX = "/v1"

ADMIN_CODES: dict[str, tuple[int, str]] = {
    "invalid_parameter": (400, "a parameter or the body is malformed or not acceptable; "
                               "the message names it"),
    "unauthorized": (401, "no admin key, or a wrong or revoked one"),
    "forbidden": (403, "the key is confined to one app and this needs every app"),
    "not_found": (404, "no such object, or one of another app than the key's"),
    "method_not_allowed": (405, "the endpoint does not take that HTTP method"),
    "conflict": (409, "the name or number is taken, or something still uses the object"),
    "too_large": (413, "a body over 16 KiB"),
    "rate_limited": (429, "too many failed authentications from this address; see "
                          "Retry-After"),
}


class AdminError(Exception):
    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or {}


class ErrorBody(BaseModel):
    code: str = Field(description="Stable: " + ", ".join(f"`{c}`" for c in ADMIN_CODES))
    message: str = Field(description="One sentence for a person.")


def _error(code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=ADMIN_CODES[code][0],
                        headers=headers)


def _errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    return {ADMIN_CODES[c][0]: {"model": ErrorBody, "description": ADMIN_CODES[c][1]}
            for c in ("unauthorized", "rate_limited", *codes)}


# Bodies ------------------------------------------------------------------------------


class AppIn(BaseModel):
    name: str = Field(max_length=100)


class AppPatch(BaseModel):
    record_calls: bool | None = None
    default_did: str | None = Field(None, description="one of the app's DIDs; '' clears")


class DeviceIn(BaseModel):
    app_id: str
    sip_user: str = Field(max_length=64)
    password: str = Field(max_length=128, description="at least 8 characters")
    display_name: str = Field("", max_length=100)
    extension: str | None = Field(None, description="2 to 8 digits")


class PasswordIn(BaseModel):
    password: str = Field(max_length=128)


class DidIn(BaseModel):
    app_id: str
    number: str
    sip_user: str


class TrunkIn(BaseModel):
    app_id: str
    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str | None = None
    password: str | None = None
    prefix: str = ""
    strip: int = 0
    match: list[str] = Field(default_factory=list, description="number prefixes served; "
                                                                "empty: every number")
    priority: int = 0


class TrunkPatch(BaseModel):
    match: list[str] | None = None
    priority: int | None = None


class WebhookIn(BaseModel):
    app_id: str
    url: str = Field(max_length=2048)
    events: str = "*"


class FlowIn(BaseModel):
    document: str = Field(max_length=12 * 1024, description="the flow, YAML or JSON text")


class FlowCheckIn(FlowIn):
    app_id: str | None = Field(None, description="also check the app's names and prompts")


class QueueIn(BaseModel):
    app_id: str
    name: str
    agents: list[str]
    strategy: str | None = None
    max_wait: int | None = None
    max_length: int | None = None
    ring_timeout: int | None = None
    wrapup: int | None = None


class QueuePatch(BaseModel):
    agents: list[str] | None = None
    strategy: str | None = None
    max_wait: int | None = None
    max_length: int | None = None
    ring_timeout: int | None = None
    wrapup: int | None = None


class OperatorIn(BaseModel):
    name: str
    password: str = Field(max_length=256, description="at least 10 characters")
    app_id: str | None = None


class PromptIn(BaseModel):
    app_id: str
    name: str
    text: str = Field(max_length=2000, description="spoken by espeak-ng (audio files: "
                                                   "tongdai prompt add)")
    lang: str = "vi"


class KeyIn(BaseModel):
    app_id: str | None = None
    label: str = ""


# The app -----------------------------------------------------------------------------


def create_admin_api(*, store: SqlStore, settings: Settings, auth: AdminAuth,
                     live_calls: LiveCallSource | None = None,
                     queues: QueueProbe | None = None,
                     clock: Callable[[], float] = time.time) -> FastAPI:
    """The admin API as an ASGI app serving ``/v1/...``: mounted at ``MOUNT``."""
    app = FastAPI(
        title="tongdai admin API", version="1",
        description="Administration of tongdai: apps, devices, DIDs, trunks, webhooks, "
                    "call flows (on DIDs and on extensions), queues, agents, prompts, "
                    "registrations, live calls, CDRs, admin keys and the audit log. "
                    "Authenticate with `Authorization: Bearer <admin key>` "
                    "(`tongdai admin-key create [--app APP_ID]`). Errors are "
                    "`{\"code\", \"message\"}`:\n\n" + "\n".join(
                        f"- {s} `{c}`: {w}" for c, (s, w) in ADMIN_CODES.items()),
        openapi_url=f"{PREFIX}/openapi.json", docs_url=None, redoc_url=None,
        redirect_slashes=False,
    )

    async def _admin_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AdminError)
        return _error(exc.code, exc.message, exc.headers)

    async def _store_error(_: Request, exc: Exception) -> JSONResponse:
        match exc:
            case NotFound():
                return _error("not_found", str(exc))
            case Conflict():
                return _error("conflict", str(exc))
            case Denied():
                return _error("forbidden", str(exc))
        return _error("invalid_parameter", str(exc))

    async def _http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return _error("method_not_allowed", "This endpoint does not take that method.")
        if exc.status_code == 404:
            return _error("not_found", "There is no such endpoint; see "
                                       f"{MOUNT}{PREFIX}/openapi.json.")
        return _error("invalid_parameter", "The request is malformed.")

    async def _invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errs = list(exc.errors())
        if not errs:
            return _error("invalid_parameter", "The request is malformed.")
        loc = [str(p) for p in errs[0].get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "the body"
        msg = str(errs[0].get("msg", "is invalid")).removeprefix("Value error, ")
        return _error("invalid_parameter", f"{name}: {msg[:1].lower()}{msg[1:]}.")

    app.add_exception_handler(AdminError, _admin_error)
    app.add_exception_handler(Invalid, _store_error)
    app.add_exception_handler(NotFound, _store_error)
    app.add_exception_handler(Conflict, _store_error)
    app.add_exception_handler(Denied, _store_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        client = request.client.host if request.client else "unknown"
        if scheme.lower() != "bearer" or not key.strip():
            raise AdminError("unauthorized", "Give an admin key: Authorization: Bearer "
                                             "<key> (tongdai admin-key create).")
        try:
            return await auth.key(client, key)
        except AuthFailed as exc:
            if exc.retry_after > 0:
                raise AdminError("rate_limited", str(exc),
                                 {"Retry-After": str(int(exc.retry_after) + 1)}) from None
            raise AdminError("unauthorized", str(exc)) from None

    async def service(request: Request) -> AdminService:
        return AdminService(store=store, settings=settings,
                            principal=await principal(request), live_calls=live_calls,
                            queues=queues, clock=clock)

    app.state.service = service
    app.include_router(_routes())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        # The Swagger UI assets the Open API serves from the package (no CDN).
        return get_swagger_ui_html(
            openapi_url=f"{MOUNT}{PREFIX}/openapi.json", title="tongdai admin API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png")

    return app


# Declares the scheme in the OpenAPI document; ``principal`` checks the key itself.
_bearer = HTTPBearer(auto_error=False, description="An admin key (tongdai admin-key create)")


async def _service(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> AdminService:
    make: Callable[[Request], Awaitable[AdminService]] = request.app.state.service
    return await make(request)


S = Annotated[AdminService, Depends(_service)]
App = Annotated[str | None, Query(description="only this app's")]


def _routes() -> APIRouter:
    r = APIRouter(prefix=PREFIX)
    nf = _errors("not_found")
    ch = _errors("invalid_parameter", "not_found", "conflict", "forbidden")

    @r.get("/me", tags=["keys"], responses=_errors(),
           summary="Who the key is: its actor name and the app it is confined to")
    async def me(svc: S) -> dict[str, Any]:
        return {"actor": svc.principal.actor, "app_id": svc.principal.app_id}

    # Apps
    @r.get("/apps", tags=["apps"], responses=_errors())
    async def list_apps(svc: S) -> list[dict[str, Any]]:
        return await svc.list_apps()

    @r.post("/apps", tags=["apps"], status_code=201, responses=ch,
            summary="Create an app; the answer holds its secret, shown only now")
    async def create_app(svc: S, body: AppIn) -> dict[str, Any]:
        return await svc.create_app(body.name)

    @r.get("/apps/{app_id}", tags=["apps"], responses=nf)
    async def get_app(svc: S, app_id: str) -> dict[str, Any]:
        return await svc.get_app(app_id)

    @r.patch("/apps/{app_id}", tags=["apps"], responses=ch)
    async def update_app(svc: S, app_id: str, body: AppPatch) -> dict[str, Any]:
        return await svc.update_app(app_id, record_calls=body.record_calls,
                                    default_did=body.default_did)

    @r.post("/apps/{app_id}/rotate-secret", tags=["apps"], responses=nf)
    async def rotate(svc: S, app_id: str) -> dict[str, Any]:
        return await svc.rotate_secret(app_id)

    @r.delete("/apps/{app_id}", tags=["apps"], responses=ch)
    async def delete_app(svc: S, app_id: str) -> dict[str, Any]:
        return await svc.delete_app(app_id)

    # Devices
    @r.get("/devices", tags=["devices"], responses=nf,
           summary="Devices with their presence (online, live bindings)")
    async def list_devices(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_devices(app_id)

    @r.post("/devices", tags=["devices"], status_code=201, responses=ch)
    async def add_device(svc: S, body: DeviceIn) -> dict[str, Any]:
        return await svc.add_device(body.app_id, body.sip_user, body.password,
                                    display_name=body.display_name, extension=body.extension)

    @r.get("/devices/{sip_user}", tags=["devices"], responses=nf)
    async def get_device(svc: S, sip_user: str) -> dict[str, Any]:
        return await svc.get_device(sip_user)

    @r.put("/devices/{sip_user}/password", tags=["devices"], responses=ch)
    async def set_password(svc: S, sip_user: str, body: PasswordIn) -> dict[str, Any]:
        return await svc.set_device_password(sip_user, body.password)

    @r.delete("/devices/{sip_user}", tags=["devices"], responses=ch)
    async def remove_device(svc: S, sip_user: str) -> dict[str, Any]:
        return await svc.remove_device(sip_user)

    # DIDs
    @r.get("/dids", tags=["dids"], responses=nf)
    async def list_dids(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_dids(app_id)

    @r.post("/dids", tags=["dids"], status_code=201, responses=ch)
    async def add_did(svc: S, body: DidIn) -> dict[str, Any]:
        return await svc.add_did(body.app_id, body.number, body.sip_user)

    @r.delete("/dids/{number}", tags=["dids"], responses=ch)
    async def remove_did(svc: S, number: str) -> dict[str, Any]:
        return await svc.remove_did(number)

    # Trunks
    @r.get("/trunks", tags=["trunks"], responses=nf, summary="Trunks (never their passwords)")
    async def list_trunks(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_trunks(app_id)

    @r.post("/trunks", tags=["trunks"], status_code=201, responses=ch)
    async def add_trunk(svc: S, body: TrunkIn) -> dict[str, Any]:
        return await svc.add_trunk(
            body.app_id, body.name, host=body.host, port=body.port, transport=body.transport,
            username=body.username, password=body.password, prefix=body.prefix,
            strip=body.strip, match=body.match, priority=body.priority)

    @r.patch("/trunks/{app_id}/{name}", tags=["trunks"], responses=ch)
    async def update_trunk(svc: S, app_id: str, name: str, body: TrunkPatch) -> dict[str, Any]:
        return await svc.update_trunk(app_id, name, match=body.match, priority=body.priority)

    @r.delete("/trunks/{app_id}/{name}", tags=["trunks"], responses=ch)
    async def remove_trunk(svc: S, app_id: str, name: str) -> dict[str, Any]:
        return await svc.remove_trunk(app_id, name)

    # Webhooks
    @r.get("/webhooks", tags=["webhooks"], responses=nf)
    async def list_webhooks(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_webhooks(app_id)

    @r.post("/webhooks", tags=["webhooks"], status_code=201, responses=ch,
            summary="Add a webhook; the answer holds its signing secret, shown only now")
    async def add_webhook(svc: S, body: WebhookIn) -> dict[str, Any]:
        return await svc.add_webhook(body.app_id, body.url, body.events)

    @r.post("/webhooks/{webhook_id}/enable", tags=["webhooks"], responses=nf)
    async def enable_webhook(svc: S, webhook_id: str) -> dict[str, Any]:
        return await svc.enable_webhook(webhook_id)

    @r.post("/webhooks/{webhook_id}/disable", tags=["webhooks"], responses=nf)
    async def disable_webhook(svc: S, webhook_id: str) -> dict[str, Any]:
        return await svc.enable_webhook(webhook_id, enabled=False)

    @r.delete("/webhooks/{webhook_id}", tags=["webhooks"], responses=nf)
    async def remove_webhook(svc: S, webhook_id: str) -> dict[str, Any]:
        return await svc.remove_webhook(webhook_id)

    @r.get("/deliveries", tags=["webhooks"], responses=_errors("invalid_parameter",
                                                               "not_found"),
           summary="Webhook deliveries, newest first")
    async def deliveries(svc: S, app_id: App = None, webhook_id: str | None = None,
                         status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return await svc.list_deliveries(app_id, webhook_id, status, limit)

    @r.post("/deliveries/{delivery_id}/redeliver", tags=["webhooks"], responses=nf)
    async def redeliver(svc: S, delivery_id: str) -> dict[str, Any]:
        d, enabled = await svc.redeliver(delivery_id)
        return {**d, "webhook_enabled": enabled}

    # What is happening
    @r.get("/registrations", tags=["calls"], responses=nf, summary="Live bindings")
    async def registrations(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_registrations(app_id)

    @r.get("/calls", tags=["calls"], responses=nf,
           summary="Calls in progress: parties, state, since when")
    async def calls(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.live_calls(app_id)

    @r.get("/cdrs", tags=["calls"], responses=_errors("invalid_parameter", "not_found"),
           summary="An app's call detail records, newest first, filtered")
    async def cdrs(svc: S, app_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0, number: str | None = None,
                   status: str | None = None, direction: str | None = None,
                   device: str | None = None, start_ts: float = 0.0,
                   end_ts: float | None = None) -> dict[str, Any]:
        total, rows = await svc.list_cdrs(
            app_id, limit=limit, offset=offset, start_ts=start_ts, end_ts=end_ts,
            number=number, status=status, direction=direction, device=device)
        return {"total": total, "cdrs": rows}

    # Call flows, queues and agents
    @r.get("/flows", tags=["flows"], responses=nf)
    async def list_flows(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.flows.list_flows(app_id)

    @r.get("/flows/{did}", tags=["flows"], responses=nf, summary="A DID's flow document")
    async def get_flow(svc: S, did: str) -> dict[str, Any]:
        return await svc.flows.get_flow(did)

    @r.put("/flows/{app_id}/{did}", tags=["flows"], responses=ch,
           summary="Attach (or replace) a DID's flow; refused with the path of its bad node")
    async def set_flow(svc: S, app_id: str, did: str, body: FlowIn) -> dict[str, Any]:
        return await svc.flows.set_flow(app_id, did, body.document)

    @r.post("/flows/check", tags=["flows"], responses=ch,
            summary="Check a flow without saving it")
    async def check_flow(svc: S, body: FlowCheckIn) -> dict[str, Any]:
        return await svc.flows.check_flow(body.document, body.app_id)

    @r.delete("/flows/{app_id}/{did}", tags=["flows"], responses=ch)
    async def remove_flow(svc: S, app_id: str, did: str) -> dict[str, Any]:
        return await svc.flows.remove_flow(app_id, did)

    # Flows on internal extensions: keyed by app, as an extension is the app's own
    @r.get("/extension-flows", tags=["flows"], responses=nf,
           summary="Flows a device enters by dialling an extension")
    async def list_extension_flows(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.flows.list_extension_flows(app_id)

    @r.get("/extension-flows/{app_id}/{extension}", tags=["flows"], responses=nf,
           summary="An extension's flow document")
    async def get_extension_flow(svc: S, app_id: str, extension: str) -> dict[str, Any]:
        return await svc.flows.get_extension_flow(app_id, extension)

    @r.put("/extension-flows/{app_id}/{extension}", tags=["flows"], responses=ch,
           summary="Attach (or replace) an extension's flow; refused with the path of its "
                   "bad node, or when a device of the app has that extension")
    async def set_extension_flow(svc: S, app_id: str, extension: str, body: FlowIn
                                 ) -> dict[str, Any]:
        return await svc.flows.set_extension_flow(app_id, extension, body.document)

    @r.delete("/extension-flows/{app_id}/{extension}", tags=["flows"], responses=ch)
    async def remove_extension_flow(svc: S, app_id: str, extension: str) -> dict[str, Any]:
        return await svc.flows.remove_extension_flow(app_id, extension)

    @r.get("/queues", tags=["flows"], responses=nf)
    async def list_queues(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.flows.list_queues(app_id)

    @r.get("/queues/status", tags=["flows"], responses=nf,
           summary="An app's queues: callers waiting, each agent's state")
    async def queue_status(svc: S, app_id: str) -> list[dict[str, Any]]:
        return await svc.flows.queue_status(app_id)

    @r.post("/queues", tags=["flows"], status_code=201, responses=ch)
    async def add_queue(svc: S, body: QueueIn) -> dict[str, Any]:
        return await svc.flows.add_queue(
            body.app_id, body.name, body.agents, strategy=body.strategy,
            max_wait=body.max_wait, max_length=body.max_length,
            ring_timeout=body.ring_timeout, wrapup=body.wrapup)

    @r.patch("/queues/{app_id}/{name}", tags=["flows"], responses=ch)
    async def update_queue(svc: S, app_id: str, name: str, body: QueuePatch
                           ) -> dict[str, Any]:
        return await svc.flows.update_queue(app_id, name, **body.model_dump())

    @r.delete("/queues/{app_id}/{name}", tags=["flows"], responses=ch)
    async def remove_queue(svc: S, app_id: str, name: str) -> dict[str, Any]:
        return await svc.flows.remove_queue(app_id, name)

    @r.post("/agents/{app_id}/{sip_user}/pause", tags=["flows"], responses=ch,
            summary="The agent takes no queue calls")
    async def pause(svc: S, app_id: str, sip_user: str) -> dict[str, Any]:
        return await svc.flows.pause_agent(app_id, sip_user, True)

    @r.post("/agents/{app_id}/{sip_user}/unpause", tags=["flows"], responses=ch)
    async def unpause(svc: S, app_id: str, sip_user: str) -> dict[str, Any]:
        return await svc.flows.pause_agent(app_id, sip_user, False)

    # Prompts
    @r.get("/prompts", tags=["flows"], responses=nf, summary="An app's prompts and the "
                                                             "built-ins")
    async def list_prompts(svc: S, app_id: str) -> list[dict[str, Any]]:
        return await svc.prompts.list(app_id)

    @r.post("/prompts", tags=["flows"], status_code=201, responses=ch,
            summary="Add or replace a prompt spoken from a text")
    async def add_prompt(svc: S, body: PromptIn) -> dict[str, Any]:
        return await svc.prompts.add(body.app_id, body.name, text=body.text, lang=body.lang)

    @r.delete("/prompts/{app_id}/{name}", tags=["flows"], responses=ch)
    async def remove_prompt(svc: S, app_id: str, name: str) -> dict[str, Any]:
        return await svc.prompts.remove(app_id, name)

    # Keys and audit
    @r.get("/admin-keys", tags=["keys"], responses=nf)
    async def list_keys(svc: S, app_id: App = None) -> list[dict[str, Any]]:
        return await svc.list_admin_keys(app_id)

    @r.post("/admin-keys", tags=["keys"], status_code=201, responses=ch,
            summary="A new admin key; the answer holds the key, shown only now")
    async def create_key(svc: S, body: KeyIn) -> dict[str, Any]:
        return await svc.create_admin_key(body.app_id, body.label)

    @r.delete("/admin-keys/{key_id}", tags=["keys"], responses=nf, summary="Revoke a key")
    async def revoke_key(svc: S, key_id: str) -> dict[str, Any]:
        return await svc.revoke_admin_key(key_id)

    @r.get("/operators", tags=["keys"], responses=_errors(),
           summary="The console's operators (never their passwords)")
    async def list_operators(svc: S) -> list[dict[str, Any]]:
        return await svc.list_operators()

    @r.post("/operators", tags=["keys"], status_code=201, responses=ch,
            summary="A person who signs in to the console with a password")
    async def add_operator(svc: S, body: OperatorIn) -> dict[str, Any]:
        return await svc.add_operator(body.name, body.password, body.app_id)

    @r.delete("/operators/{name}", tags=["keys"], responses=nf)
    async def remove_operator(svc: S, name: str) -> dict[str, Any]:
        return await svc.remove_operator(name)

    @r.get("/audit", tags=["audit"], responses=_errors("invalid_parameter", "not_found"),
           summary="Every change: who, what, when; newest first")
    async def audit(svc: S, app_id: App = None, limit: int = 100,
                    before: int | None = None) -> list[dict[str, Any]]:
        return await svc.audit_log(app_id, limit=limit, before=before)

    return r
