"""``GET /oapi/v1/devices``: presence of the app's devices.

For each device: online or offline (a live registration, in this process or written
to the database by another), its bindings, when it came online or went offline as
far as this process saw, and whether it is in a call (``presence.LiveCalls``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request

from tongdai.api.context import ApiContext, client_of, error_docs
from tongdai.api.docs import required
from tongdai.api.errors import unauthorized
from tongdai.api.presence import LiveCalls
from tongdai.api.schemas import DeviceList
from tongdai.store.presence import DeviceBindings

DEVICES_PATH = "/oapi/v1/devices"


def _device(ctx: ApiContext, live: LiveCalls, app_id: str, d: DeviceBindings,
            now: float) -> dict[str, Any]:
    online = bool(d.bindings) or ctx.calls.is_registered(d.sip_user)
    change = live.changes.get((app_id, d.sip_user))
    calls = live.calls_of(app_id, d.sip_user, now)
    newest = d.bindings[0] if d.bindings else None
    return {
        "sip_user": d.sip_user,
        "display_name": d.display_name,
        "extension": d.extension,
        "online": online,
        "bindings": len(d.bindings),
        "registered_until": int(newest.expires_at) if newest else None,
        "transport": newest.transport if newest else None,
        "user_agent": newest.user_agent if newest else None,
        "online_since": int(change[1]) if change and change[0] and online else None,
        "offline_since": int(change[1]) if change and not change[0] and not online else None,
        "in_call": bool(calls),
        "call_state": ("talking" if any(c.state == "talking" for c in calls)
                       else "ringing" if calls else "idle"),
        "calls": [{"call_id": c.call_id, "state": c.state, "since": int(c.since)}
                  for c in calls],
    }


def devices_router(ctx: ApiContext, *, live: LiveCalls) -> APIRouter:
    router = APIRouter(tags=["Open API"])

    @router.get(
        DEVICES_PATH,
        response_model=DeviceList,
        summary="Presence of the app's devices: online, bindings, in-call state",
        description=(
            "Every device (SIP account) of the app, by sipUser: `online` while it has "
            "a live registration; `registered_until` the expiry of its freshest "
            "binding; `online_since` / `offline_since` when it last came online or "
            "went offline, as far as this server has seen since it started (else "
            "null); `in_call`, `call_state` (`idle`, `ringing`, `talking`) and its "
            "live `calls`. Headers as for auth_token: `x-auth-app-id` and "
            "`x-auth-app-hash` = sha256(appId + appSecret). Changes are also "
            "streamed as `device.registered` / `device.unregistered` and `call.*` "
            "events."
        ),
        responses=error_docs("unauthorized", "too_large", "rate_limited", "app_rate_limited"),
        openapi_extra=required("x-auth-app-id", "x-auth-app-hash"),
    )
    async def devices(
        request: Request,
        x_auth_app_id: str | None = Header(
            None, alias="x-auth-app-id", description="The app id (appId)."),
        x_auth_app_hash: str | None = Header(
            None, alias="x-auth-app-hash", description="sha256(appId + appSecret), hex."),
    ) -> Any:
        client = client_of(request)
        ctx.auth.check_not_blocked(client)
        app_id, given = x_auth_app_id, x_auth_app_hash
        if not app_id:
            raise unauthorized("The x-auth-app-id header is required.")
        if not given:
            raise unauthorized("The x-auth-app-hash header is required: "
                               "sha256(appId + appSecret).")
        app = await ctx.auth.app_by_hash(client, app_id, given, lambda s: (app_id + s,))
        now = ctx.clock()
        rows = await ctx.store.device_bindings(app.app_id, now)
        return {"data": [_device(ctx, live, app.app_id, d, now) for d in rows]}

    return router
