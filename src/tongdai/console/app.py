"""The console's pages, forms and live-update websocket (mounted at ``/console``).

Every page needs a session (a signed, HttpOnly, SameSite=Strict cookie; Secure over
HTTPS); every POST carries the session's CSRF token; sign-in failures count in the
shared throttle. Pages read and change things only through the admin service, as the
signed-in principal, so a tenant's session sees its own app only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tongdai.admin.auth import AdminAuth, AuthFailed
from tongdai.admin.service import AdminService, LiveCallSource, Principal, QueueProbe
from tongdai.bus import Event, EventBus
from tongdai.console import i18n
from tongdai.console.flowpage import flow_of, flow_tables, save_flow
from tongdai.console.flowtree import tree
from tongdai.console.resources import RESOURCES, Resource, offered
from tongdai.console.session import COOKIE, LIFETIME, PRE_COOKIE, Session, Sessions
from tongdai.console.upload import MAX_UPLOAD, UPLOAD_ROUTE, BadUpload, parse
from tongdai.media.urls import RecordingSigner
from tongdai.settings import Settings
from tongdai.store.errors import StoreError
from tongdai.store.sql import SqlStore

MOUNT = "/console"
STATIC = Path(__file__).parent / "static"
_ASSETS = {"console.js": "text/javascript; charset=utf-8",
           "console.css": "text/css; charset=utf-8"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'")
MAX_FORM = 8 * 1024
# Websocket close codes: no session / not allowed.
WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403


@dataclass(frozen=True, slots=True)
class Page:
    """What every page is rendered with."""

    session: Session
    service: AdminService
    lang: str
    app_id: str | None
    apps: list[dict[str, Any]]


class Console:
    def __init__(self, *, store: SqlStore, settings: Settings, bus: EventBus,
                 auth: AdminAuth, sessions: Sessions, recordings: RecordingSigner,
                 live_calls: LiveCallSource | None = None, queues: QueueProbe | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.settings, self.bus, self.auth = store, settings, bus, auth
        self.queues = queues
        self.sessions, self.recordings, self.live, self.clock = (
            sessions, recordings, live_calls, clock)
        self.tz = ZoneInfo(settings.timezone)
        self.env = Environment(loader=PackageLoader("tongdai.console", "templates"),
                               autoescape=select_autoescape(["html"]))
        self.env.filters["clock"] = self._clock
        self.env.filters["hms"] = _hms

    def _clock(self, ts: float | None) -> str:
        if not ts:
            return "-"
        return dt.datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    # Plumbing ------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.dashboard),
            Route("/signin", self.signin_page, methods=["GET"]),
            Route("/signin", self.signin, methods=["POST"]),
            Route("/signout", self.signout, methods=["POST"]),
            Route("/lang", self.language),
            Route("/devices", self.devices, methods=["GET", "POST"]),
            Route("/devices/{sip_user}/remove", self.device_remove, methods=["POST"]),
            Route("/calls", self.calls),
            Route("/webhooks", self.webhooks),
            Route("/webhooks/{webhook_id}/{action}", self.webhook_action, methods=["POST"]),
            Route("/flows", self.flows, methods=["GET", "POST"]),
            Route("/queues.json", self.queue_status),
            Route(UPLOAD_ROUTE, self.prompt_upload, methods=["POST"]),
            Route("/manage/{kind}", self.resource, methods=["GET", "POST"]),
            Route("/manage/{kind}/{action}", self.resource_action, methods=["POST"]),
            Route("/static/{name}", self.static),
            WebSocketRoute("/ws", self.websocket),
        ])

    def _lang(self, request: Request | WebSocket) -> str:
        return i18n.pick(request.cookies.get("td_lang"),
                         request.headers.get("accept-language", ""))

    def _render(self, template: str, lang: str, status: int = 200,
                **values: Any) -> HTMLResponse:
        words = i18n.CATALOGUE[lang]
        html = self.env.get_template(template).render(t=words, lang=lang, **values)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    async def _form(self, request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM:
            return {}
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}

    async def _session(self, request: Request | WebSocket) -> Session | None:
        s = self.sessions.read(request.cookies.get(COOKIE), self.clock())
        if s is None or not await self.auth.still_valid(s.principal):
            return None
        return s

    async def _posted(self, request: Request) -> tuple[Page, dict[str, str]] | Response:
        """A signed-in page's POST with its form, once its CSRF token is checked (else
        the redirect to sign in, or 403)."""
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        form = await self._form(request)
        if not self.sessions.csrf_ok(p.session.nonce, form.get("csrf")):
            return _forbidden()
        return p, form

    async def _page(self, request: Request) -> Page | Response:
        """The signed-in page context, or a redirect to the sign-in page."""
        s = await self._session(request)
        if s is None:
            return RedirectResponse(f"{MOUNT}/signin", status_code=303, headers=_HEADERS)
        svc = self._service(s.principal)
        apps = await svc.list_apps()
        wanted = request.query_params.get("app")
        ids = [a["app_id"] for a in apps]
        app_id = wanted if wanted in ids else (s.principal.app_id or (ids[0] if ids else None))
        if wanted is not None and wanted not in ids:
            # Another tenant's app, or none at all: as if it did not exist.
            return self._render("error.html", self._lang(request), 404, message="404",
                                page=None)
        return Page(s, svc, self._lang(request), app_id, apps)

    def _service(self, principal: Principal) -> AdminService:
        return AdminService(store=self.store, settings=self.settings, principal=principal,
                            live_calls=self.live, queues=self.queues, clock=self.clock)

    def _common(self, p: Page, active: str) -> dict[str, Any]:
        return {"page": p, "active": active, "csrf": self.sessions.csrf(p.session.nonce),
                "manage": offered(p.session.principal.app_id),
                "app_id": p.app_id, "apps": p.apps, "actor": p.session.principal.actor,
                "q": urlencode({"app": p.app_id}) if p.app_id else ""}

    # Sign-in -------------------------------------------------------------------------

    async def signin_page(self, request: Request, error: str = "", status: int = 200
                          ) -> Response:
        pre = request.cookies.get(PRE_COOKIE) or _token()
        resp = self._render("signin.html", self._lang(request), status, error=error,
                            csrf=self.sessions.csrf("signin:" + pre), page=None)
        _cookie(resp, request, PRE_COOKIE, pre, max_age=3600)
        return resp

    async def signin(self, request: Request) -> Response:
        form = await self._form(request)
        lang = self._lang(request)
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not self.sessions.csrf_ok("signin:" + pre, form.get("csrf")):
            return await self.signin_page(request, i18n.CATALOGUE[lang]["bad_csrf"], 403)
        client = request.client.host if request.client else "unknown"
        try:
            if form.get("key"):
                principal = await self.auth.key(client, form["key"])
            else:
                principal = await self.auth.operator(client, form.get("name", ""),
                                                     form.get("password", ""))
        except AuthFailed as exc:
            return await self.signin_page(request, str(exc),
                                          429 if exc.retry_after > 0 else 401)
        value, _ = self.sessions.issue(principal, self.clock())
        resp = RedirectResponse(f"{MOUNT}/", status_code=303, headers=_HEADERS)
        _cookie(resp, request, COOKIE, value, max_age=LIFETIME)
        resp.delete_cookie(PRE_COOKIE, path=MOUNT)
        return resp

    async def signout(self, request: Request) -> Response:
        s = await self._session(request)
        form = await self._form(request)
        if s is None or not self.sessions.csrf_ok(s.nonce, form.get("csrf")):
            return _forbidden()
        resp = RedirectResponse(f"{MOUNT}/signin", status_code=303, headers=_HEADERS)
        resp.delete_cookie(COOKIE, path=MOUNT)
        return resp

    async def language(self, request: Request) -> Response:
        to = request.query_params.get("to", "en")
        back = request.query_params.get("next", f"{MOUNT}/")
        if not back.startswith(MOUNT + "/") or urlsplit(back).netloc:  # no open redirect
            back = f"{MOUNT}/"
        resp = RedirectResponse(back, status_code=303, headers=_HEADERS)
        if to in i18n.LANGS:
            _cookie(resp, request, "td_lang", to, max_age=365 * 86400, http_only=False)
        return resp

    # Pages ---------------------------------------------------------------------------

    async def dashboard(self, request: Request) -> Response:
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        calls: list[dict[str, Any]] = []
        online: list[dict[str, Any]] = []
        hours: list[tuple[str, int]] = []
        queues: list[dict[str, Any]] = []
        if p.app_id is not None:
            calls = await p.service.live_calls(p.app_id)
            queues = await p.service.flows.queue_status(p.app_id)
            online = [d for d in await p.service.list_devices(p.app_id) if d["online"]]
            hours = await self._per_hour(p.service, p.app_id)
        peak = max((n for _, n in hours), default=0) or 1
        return self._render("dashboard.html", p.lang, calls=calls, online=online,
                            hours=hours, peak=peak, now=self.clock(), queues=queues,
                            **self._common(p, "dashboard"))

    async def _per_hour(self, svc: AdminService, app_id: str) -> list[tuple[str, int]]:
        now = self.clock()
        first = int(now // 3600 - 23) * 3600
        _, rows = await svc.list_cdrs(app_id, limit=1000, start_ts=first, end_ts=now + 1)
        counts = [0] * 24
        for r in rows:
            i = int((r["unix_timestamp"] - first) // 3600)
            if 0 <= i < 24:
                counts[i] += 1
        return [(dt.datetime.fromtimestamp(first + i * 3600, self.tz).strftime("%H"), n)
                for i, n in enumerate(counts)]

    async def devices(self, request: Request) -> Response:
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        error, status, values = "", 200, {}
        if request.method == "POST":
            form = await self._form(request)
            if not self.sessions.csrf_ok(p.session.nonce, form.get("csrf")):
                return _forbidden()
            values = {k: form.get(k, "") for k in ("sip_user", "display_name", "extension")}
            try:
                if p.app_id is None:
                    raise StoreError(i18n.CATALOGUE[p.lang]["no_apps"])
                await p.service.add_device(
                    p.app_id, values["sip_user"].strip(), form.get("password", ""),
                    display_name=values["display_name"],
                    extension=values["extension"].strip() or None)
            except StoreError as exc:
                error, status = str(exc), 400
            else:
                return RedirectResponse(f"{MOUNT}/devices?{urlencode({'app': p.app_id})}",
                                        status_code=303, headers=_HEADERS)
        rows = await p.service.list_devices(p.app_id) if p.app_id else []
        return self._render("devices.html", p.lang, status, devices=rows, error=error,
                            values=values, **self._common(p, "devices"))

    async def device_remove(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        p, _ = posted
        try:
            await p.service.remove_device(request.path_params["sip_user"])
        except StoreError as exc:
            rows = await p.service.list_devices(p.app_id) if p.app_id else []
            return self._render("devices.html", p.lang, 400, devices=rows, error=str(exc),
                                values={}, **self._common(p, "devices"))
        return RedirectResponse(f"{MOUNT}/devices?{urlencode({'app': p.app_id or ''})}",
                                status_code=303, headers=_HEADERS)

    async def calls(self, request: Request) -> Response:
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        q = request.query_params
        f = {k: q.get(k, "").strip() for k in ("number", "status", "direction", "device",
                                               "from", "to")}
        error, total, rows = "", 0, list[dict[str, Any]]()
        if p.app_id is not None:
            try:
                start = self._day(f["from"], 0) if f["from"] else 0.0
                end = self._day(f["to"], 1) if f["to"] else None
                total, rows = await p.service.list_cdrs(
                    p.app_id, limit=100, start_ts=start, end_ts=end,
                    number=_number(f["number"]), status=f["status"] or None,
                    direction=f["direction"] or None, device=f["device"] or None)
            except (StoreError, ValueError) as exc:
                error = str(exc)
        now = self.clock()
        for r in rows:
            if r["recording"]:
                url, _ = self.recordings.signed_url(p.app_id or "", r["recording"], now)
                r["recording_url"] = _path_of(url)
        return self._render("calls.html", p.lang, 400 if error else 200, cdrs=rows,
                            total=total, f=f, error=error, **self._common(p, "calls"))

    def _day(self, value: str, plus: int) -> float:
        day = dt.date.fromisoformat(value) + dt.timedelta(days=plus)
        return dt.datetime.combine(day, dt.time(), self.tz).timestamp()

    async def webhooks(self, request: Request, error: str = "") -> Response:
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        hooks = await p.service.list_webhooks(p.app_id) if p.app_id else []
        deliveries = await p.service.list_deliveries(p.app_id, limit=50) if p.app_id else []
        return self._render("webhooks.html", p.lang, 400 if error else 200, hooks=hooks,
                            deliveries=deliveries, error=error,
                            **self._common(p, "webhooks"))

    async def webhook_action(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        p, _ = posted
        action = request.path_params["action"]
        if action not in ("enable", "disable"):
            return _forbidden()
        try:
            await p.service.enable_webhook(request.path_params["webhook_id"], p.app_id,
                                           enabled=action == "enable")
        except StoreError as exc:
            return await self.webhooks(request, str(exc))
        return RedirectResponse(f"{MOUNT}/webhooks?{urlencode({'app': p.app_id or ''})}",
                                status_code=303, headers=_HEADERS)

    async def flows(self, request: Request) -> Response:
        """The app's DIDs and extensions with their flows, one's flow in an editor (a
        refusal shown at its node in the tree beside it), and the queues."""
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        did = request.query_params.get("did", "")
        ext = "" if did else request.query_params.get("extension", "").strip()
        error, status, saved, document = "", 200, False, ""
        if (did or ext) and p.app_id is not None:
            if request.method == "POST":
                form = await self._form(request)
                if not self.sessions.csrf_ok(p.session.nonce, form.get("csrf")):
                    return _forbidden()
                document = form.get("document", "")
                try:
                    await save_flow(p.service, p.app_id, did, ext, document)
                    saved = True
                except StoreError as exc:
                    error, status = str(exc), 400
            else:
                with contextlib.suppress(StoreError):
                    document = (await flow_of(p.service, p.app_id, did, ext))["document"]
        return self._render("flows.html", p.lang, status, did=did, ext=ext,
                            document=document, error=error, saved=saved,
                            tree=tree(document, error) if document else None,
                            **await flow_tables(p.service, p.app_id),
                            **self._common(p, "flows"))

    # Administration pages (see resources.py) ----------------------------------------

    def _resource(self, p: Page, kind: str) -> Resource | None:
        r = RESOURCES.get(kind)
        if r is None or (r.everywhere and p.session.principal.app_id is not None):
            return None
        return r

    async def resource(self, request: Request) -> Response:
        """A resource's table and its form; a POST creates (or changes) one, showing
        what is shown only once (a secret, a key) on the page it answers with."""
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        r = self._resource(p, request.path_params["kind"])
        if r is None:
            return self._render("error.html", p.lang, 404, message="404", page=None)
        error, status, made, values = "", 200, None, dict[str, str]()
        if request.method == "POST":
            form = await self._form(request)
            if not self.sessions.csrf_ok(p.session.nonce, form.get("csrf")):
                return _forbidden()
            if r.create is None:
                return self._render("error.html", p.lang, 405, message="405", page=None)
            values = {f.name: form.get(f.name, "") for f in r.fields if f.kind != "password"}
            try:
                if p.app_id is None and not r.everywhere:
                    raise StoreError(i18n.CATALOGUE[p.lang]["no_apps"])
                made = await r.create(p.service, p.app_id or "", form)
            except StoreError as exc:
                error, status = str(exc), 400
            else:
                if not r.once:
                    return self._back(r, p)
                values = {}
                if r.everywhere:  # a new app: in the picker too
                    p = Page(p.session, p.service, p.lang, p.app_id,
                             await p.service.list_apps())
        return await self._resource_page(p, r, status, error=error, made=made,
                                         values=values)

    async def _resource_page(self, p: Page, r: Resource, status: int = 200, *,
                             error: str = "", made: dict[str, Any] | None = None,
                             values: dict[str, str] | None = None) -> Response:
        rows: list[dict[str, Any]] = []
        if p.app_id is not None or r.everywhere:
            try:
                rows = await r.list(p.service, p.app_id or "")
            except StoreError as exc:
                error, status = error or str(exc), 400
        return self._render("resource.html", p.lang, status, r=r, rows=rows, error=error,
                            made=made, values=values or {},
                            **self._common(p, "manage/" + r.kind))

    def _back(self, r: Resource, p: Page) -> Response:
        return RedirectResponse(f"{MOUNT}/manage/{r.kind}?{urlencode({'app': p.app_id or ''})}",
                                status_code=303, headers=_HEADERS)

    async def resource_action(self, request: Request) -> Response:
        """A row's button: ``key`` names the row, the action is in the path."""
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        p, form = posted
        r = self._resource(p, request.path_params["kind"])
        action = r.actions.get(request.path_params["action"]) if r is not None else None
        if r is None or action is None:
            return self._render("error.html", p.lang, 404, message="404", page=None)
        try:
            if p.app_id is None and not r.everywhere:
                raise StoreError(i18n.CATALOGUE[p.lang]["no_apps"])
            done = await action.run(p.service, p.app_id or "", form.get("key", ""))
        except StoreError as exc:
            return await self._resource_page(p, r, 400, error=str(exc))
        if r.once and isinstance(done, dict) and all(k in done for k in r.once):
            return await self._resource_page(p, r, made=done)
        if r.everywhere:
            return RedirectResponse(f"{MOUNT}/manage/{r.kind}", status_code=303,
                                    headers=_HEADERS)
        return self._back(r, p)

    async def prompt_upload(self, request: Request) -> Response:
        """A prompt from an audio file (multipart form, at most ``MAX_UPLOAD`` bytes)."""
        p = await self._page(request)
        if not isinstance(p, Page):
            return p
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPLOAD:
                return _error(413, "too_large",
                              f"The request body is larger than {MAX_UPLOAD} bytes.")
        r = RESOURCES["prompts"]
        try:
            form = parse(request.headers.get("content-type", ""), bytes(body))
        except BadUpload as exc:
            return _error(400, "invalid_parameter", f"{exc}.")
        if not self.sessions.csrf_ok(p.session.nonce, form.fields.get("csrf")):
            return _forbidden()
        try:
            if p.app_id is None:
                raise StoreError(i18n.CATALOGUE[p.lang]["no_apps"])
            if not form.data:
                raise StoreError(i18n.CATALOGUE[p.lang]["no_file"])
            suffix = Path(form.filename).suffix.lower()[:8]
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / f"upload{suffix}"
                source.write_bytes(form.data)
                await p.service.prompts.add(p.app_id, form.fields.get("name", "").strip(),
                                            file=source)
        except StoreError as exc:
            return await self._resource_page(p, r, 400, error=str(exc))
        return self._back(r, p)

    async def queue_status(self, request: Request) -> Response:
        """The dashboard's queues, polled by its script (the ACD publishes no events)."""
        p = await self._page(request)
        if not isinstance(p, Page):
            return Response(status_code=401)
        rows = await p.service.flows.queue_status(p.app_id) if p.app_id else []
        return Response(json.dumps(rows), media_type="application/json", headers=_HEADERS)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            return Response("not found", status_code=404)
        return FileResponse(STATIC / name, media_type=_ASSETS[name],
                            headers={"Cache-Control": "no-cache"})

    # Live updates --------------------------------------------------------------------

    async def websocket(self, ws: WebSocket) -> None:
        """Streams the selected app's events: ``{"op": "event", "data": {...}}``."""
        origin = ws.headers.get("origin")
        host = ws.headers.get("host", "")
        # Accepted first so that the refusal carries its close code to the page.
        await ws.accept()
        s = await self._session(ws)
        if s is None:
            await ws.close(WS_UNAUTHORIZED)
            return
        # Cookies go with a cross-site websocket too: only our own pages may use it.
        if origin is None or urlsplit(origin).netloc != host:
            await ws.close(WS_FORBIDDEN)
            return
        app_id = ws.query_params.get("app", "")
        try:
            await self._service(s.principal).get_app(app_id)
        except StoreError:
            await ws.close(WS_FORBIDDEN)
            return
        stream = self.bus.subscribe()
        pump = asyncio.create_task(self._pump(ws, stream, app_id))
        try:
            await ws.send_text(json.dumps({"op": "hello", "app_id": app_id}))
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
        except WebSocketDisconnect:
            pass
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            close = getattr(stream, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def _pump(self, ws: WebSocket, stream: AsyncIterator[Event], app_id: str) -> None:
        async for ev in stream:
            if ev.app_id != app_id:
                continue
            await ws.send_text(json.dumps({"op": "event", "data": {
                "type": ev.type, "app_id": ev.app_id, "sip_users": list(ev.sip_users),
                "ts": ev.ts, "data": ev.data}}, default=str))


_HEADERS = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store"}


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(16)


def _cookie(resp: Response, request: Request, name: str, value: str, *, max_age: int,
            http_only: bool = True) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=MOUNT, httponly=http_only,
                    samesite="strict", secure=request.url.scheme == "https")


def _error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"code": code, "message": message}), status_code=status,
                    media_type="application/json", headers=_HEADERS)


def _forbidden() -> Response:
    return Response(json.dumps({"code": "csrf_failed", "message": "The form's CSRF token is "
                                "missing or wrong; reload the page."}),
                    status_code=403, media_type="application/json", headers=_HEADERS)


def _hms(seconds: float | int | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60:d}:{s % 60:02d}"


def _number(value: str) -> str | None:
    if not value:
        return None
    from tongdai import numbers

    try:
        return numbers.normalize(value)
    except ValueError:
        return value


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
