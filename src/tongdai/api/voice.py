"""The device-authenticated endpoints: ``auth_token`` and ``click-to-call``.

Both take the app headers ``x-auth-app-id`` / ``x-auth-app-hash`` (sha256 of appId +
appSecret) and a body naming the device (``sipUser``) and its SIP password.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Path, Request

from tongdai.api.auth import sha256_hex
from tongdai.api.context import ApiContext, client_of, error_docs
from tongdai.api.errors import ApiError, bad_param, unauthorized
from tongdai.api.schemas import AuthToken, CallStarted, Credentials
from tongdai.pbx.protocol import DeviceOffline
from tongdai.store import AppRec, DeviceRec, TokenRec

_PHONE = re.compile(r"\+?\d{2,20}", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_PHONE_PUNCT = str.maketrans("", "", " -.()")
MAX_FIELD_LEN = 128

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Credentials.model_json_schema()},
            "application/x-www-form-urlencoded": {"schema": Credentials.model_json_schema()},
        },
    }
}


async def _credentials(request: Request) -> tuple[str, str | None]:
    """(sipUser, sipPassword) from a JSON object or a form body."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise bad_param("The request body is not valid UTF-8.") from None
        body: Any = {k: v[-1] for k, v in form.items()}
    else:
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            raise bad_param("The request body is not valid JSON; send "
                            '{"sipUser": ..., "sipPassword": ...}.') from None
    if not isinstance(body, dict):
        raise bad_param('The request body must be a JSON object {"sipUser", "sipPassword"}.')
    user = _text_field(body, "sipUser")
    if user is None or not user:
        raise bad_param("sipUser is required.")
    return user, _text_field(body, "sipPassword")


def _text_field(body: dict[str, Any], name: str) -> str | None:
    v = body.get(name)
    if v is None:
        return None
    # Numeric SIP accounts (1001) are often sent as JSON numbers.
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str):
        raise bad_param(f"{name} must be a string.")
    if len(v) > MAX_FIELD_LEN:
        raise bad_param(f"{name} must be at most {MAX_FIELD_LEN} characters.")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_param(f"{name} must be valid Unicode text.") from None
    return v


async def _authenticate(
    ctx: ApiContext, request: Request, app_id: str | None, app_hash: str | None
) -> tuple[AppRec, DeviceRec]:
    client = client_of(request)
    ctx.auth.check_not_blocked(client)
    if not app_id:
        raise unauthorized("The x-auth-app-id header is required.")
    if not app_hash:
        raise unauthorized("The x-auth-app-hash header is required: sha256(appId + appSecret).")
    app = await ctx.auth.app_by_hash(client, app_id, app_hash, lambda s: (app_id + s,))
    user, password = await _credentials(request)
    if password is None:
        raise unauthorized("sipPassword is required.")
    dev = await ctx.auth.device_of(client, app, user, password)
    return app, dev


def voice_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["Open API"])
    app_id_h = Header(None, alias="x-auth-app-id", description="The app id (appId).")
    app_hash_h = Header(
        None, alias="x-auth-app-hash", description="sha256(appId + appSecret), hex."
    )

    @router.post(
        "/oapi/v1/voice/auth_token",
        response_model=AuthToken,
        summary="Get a websocket auth token for a device",
        description=(
            "Returns a token for the live call-signal websocket "
            "`/oapi/v1/voice/ws?token=<value>` of the device `sipUser`. The token is "
            f"valid for {ctx.settings.token_ttl} s (TONGDAI_TOKEN_TTL); only its hash is "
            "stored."
        ),
        responses=error_docs(400, 401, 413, 429),
        openapi_extra=_BODY_DOC,
    )
    async def auth_token(
        request: Request,
        x_auth_app_id: str | None = app_id_h,
        x_auth_app_hash: str | None = app_hash_h,
    ) -> dict[str, Any]:
        app, dev = await _authenticate(ctx, request, x_auth_app_id, x_auth_app_hash)
        token = secrets.token_urlsafe(32)
        expire = int(ctx.clock()) + ctx.settings.token_ttl
        await ctx.store.add_token(TokenRec(
            token_hash=sha256_hex(token), app_id=app.app_id,
            sip_user=dev.sip_user, expires_at=float(expire),
        ))
        return {"value": token, "expire": expire}

    @router.post(
        "/oapi/v1/call/click-to-call/{number}",
        response_model=CallStarted,
        summary="Click to call: ring the device, then call the number",
        description=(
            "Rings the device `sipUser` first; when it answers, calls `number` (an outside "
            "number through the app's trunk, or an extension / sipUser of the same app) "
            "and bridges the two. Answers at once with the call id; follow the call on the "
            "websocket. 400 `device_offline` when the device is not registered."
        ),
        responses=error_docs(400, 401, 413, 429),
        openapi_extra=_BODY_DOC,
    )
    async def click_to_call(
        request: Request,
        number: str = Path(
            description="Digits with an optional leading +, 2 to 20 long (spaces, dots, "
                        "dashes and parentheses are ignored), or an extension or sipUser "
                        "of this app."),
        x_auth_app_id: str | None = app_id_h,
        x_auth_app_hash: str | None = app_hash_h,
    ) -> dict[str, Any]:
        app, dev = await _authenticate(ctx, request, x_auth_app_id, x_auth_app_hash)
        target = await _target(ctx, app, number)
        offline = ApiError(
            400, "device_offline",
            f"Device {dev.sip_user} is not registered; register the SIP device, then retry.",
        )
        if not ctx.calls.is_registered(dev.sip_user):
            raise offline
        try:
            call_id = await ctx.calls.click_to_call(
                app_id=app.app_id, sip_user=dev.sip_user, number=target)
        except DeviceOffline:
            raise offline from None
        return {"call_id": call_id}

    return router


async def _target(ctx: ApiContext, app: AppRec, number: str) -> str:
    if _PHONE.fullmatch(number):
        return number
    if _NAME.fullmatch(number) and await ctx.store.find_device(app.app_id, number):
        return number
    compact = number.translate(_PHONE_PUNCT)
    if _PHONE.fullmatch(compact):
        return compact
    raise bad_param(
        "number must be a phone number (digits, optional leading +, 2 to 20 long) "
        "or an extension or sipUser of this app."
    )
