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

from fastapi import APIRouter, Header, Path, Query, Request

from tongdai import numbers
from tongdai.api import correlation
from tongdai.api.auth import sha256_hex
from tongdai.api.context import ApiContext, client_of, error_docs, single_params
from tongdai.api.docs import required
from tongdai.api.errors import ApiError, bad_param, unauthorized
from tongdai.api.schemas import AuthToken, CallStarted, ClickToCallBody, Credentials
from tongdai.pbx.protocol import DeviceOffline, InvalidNumber, NoRoute
from tongdai.pbx.routes import trunk_order
from tongdai.store import AppRec, DeviceRec, TokenRec

_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
MAX_FIELD_LEN = 128
_CREDENTIAL_HEADERS = ("x-auth-app-id", "x-auth-app-hash")


def _body_doc(model: type[Credentials]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema},
        "application/x-www-form-urlencoded": {"schema": schema},
    }}}


async def _body(request: Request) -> tuple[dict[str, Any], bool]:
    """The body as an object, and whether it was a form (whose values are all text)."""
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
    return body, ctype == "application/x-www-form-urlencoded"


def _credentials(body: dict[str, Any]) -> tuple[str, str | None]:
    """(sipUser, sipPassword) of the body."""
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
    ctx: ApiContext, request: Request, body: dict[str, Any], app_id: str | None,
    app_hash: str | None,
) -> tuple[AppRec, DeviceRec]:
    client = client_of(request)
    ctx.auth.check_not_blocked(client)
    if not app_id:
        raise unauthorized("The x-auth-app-id header is required.")
    if not app_hash:
        raise unauthorized("The x-auth-app-hash header is required: sha256(appId + appSecret).")
    app = await ctx.auth.app_by_hash(client, app_id, app_hash, lambda s: (app_id + s,))
    user, password = _credentials(body)
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
        responses=error_docs("invalid_parameter", "unauthorized", "too_large", "rate_limited"),
        openapi_extra={**_body_doc(Credentials), **required(*_CREDENTIAL_HEADERS)},
    )
    async def auth_token(
        request: Request,
        x_auth_app_id: str | None = app_id_h,
        x_auth_app_hash: str | None = app_hash_h,
    ) -> dict[str, Any]:
        body, _ = await _body(request)
        app, dev = await _authenticate(ctx, request, body, x_auth_app_id, x_auth_app_hash)
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
            "number through the first of the app's trunks that serves it, or an extension "
            "/ sipUser of the same app) and bridges the two. Answers at once with the call "
            "id; follow the call on the websocket. Nobody is rung when the request is "
            "refused: 400 `invalid_number` for a number that is neither a phone number a "
            "carrier can call nor a device of the app, `no_route` when no trunk of the app "
            "serves the number, `device_offline` when the device is not registered."
        ),
        responses=error_docs("invalid_parameter", "invalid_external_id", "invalid_metadata",
                             "invalid_number", "no_route", "device_offline", "unauthorized",
                             "too_large", "rate_limited", "app_rate_limited"),
        openapi_extra={**_body_doc(ClickToCallBody), **required(*_CREDENTIAL_HEADERS)},
    )
    async def click_to_call(
        request: Request,
        number: str = Path(
            description="A Vietnamese mobile (10 digits: 0901234567, also +84..., 84... "
                        "or a retired 11-digit 01xx number), a landline (11 digits: "
                        "02873019555), 1800/1900 numbers, 111 to 115, or + and a foreign "
                        "number; spaces, dots, dashes and parentheses are ignored. Or an "
                        "extension or sipUser of this app."),
        x_auth_app_id: str | None = app_id_h,
        x_auth_app_hash: str | None = app_hash_h,
        external_id: str | None = Query(
            None, description="Your own id for this call (1 to "
                              f"{correlation.MAX_EXTERNAL_ID} characters), returned in "
                              "every event of the call and in its history record. May "
                              "be sent in the body instead (not both).",
            examples=["crm-ticket-1042"]),
        metadata: str | None = Query(
            None, description="A JSON object (at most "
                              f"{correlation.MAX_METADATA_BYTES} bytes as compact JSON), "
                              "returned with external_id. May be sent in the body "
                              "instead (not both).",
            examples=['{"ticket": "T-1042"}']),
    ) -> dict[str, Any]:
        body, form = await _body(request)
        app, dev = await _authenticate(ctx, request, body, x_auth_app_id, x_auth_app_hash)
        corr = correlation.correlation(
            body, single_params(request, correlation.NAMES), form=form)
        target = await _target(ctx, app, number)
        offline = ApiError(
            400, "device_offline",
            f"Device {dev.sip_user} is not registered; register the SIP device, then retry.",
        )
        if not ctx.calls.is_registered(dev.sip_user):
            raise offline
        try:
            call_id = await ctx.calls.click_to_call(
                app_id=app.app_id, sip_user=dev.sip_user, number=target,
                external_id=corr.external_id, metadata=corr.metadata)
        except DeviceOffline:
            raise offline from None
        except InvalidNumber:
            raise _invalid_number() from None
        except NoRoute:  # the app's trunks changed since _target looked
            raise _no_route(target) from None
        return {"call_id": call_id}

    return router


async def _target(ctx: ApiContext, app: AppRec, number: str) -> str:
    """What to dial for ``number``: a device of the app (by sip_user or extension, as
    the dial plan looks first), else a number a carrier can call (``numbers.dialable``,
    the dial plan's rule) that one of the app's trunks serves (``routes.trunk_order``,
    the dial plan's order). Numbers are returned without their separators."""
    if _NAME.fullmatch(number) and await ctx.config.find_device(app.app_id, number):
        return number
    try:
        national = numbers.dialable(number)
    except ValueError:
        raise _invalid_number() from None
    if not trunk_order(await ctx.config.list_trunks(app.app_id), national):
        raise _no_route(national)
    return numbers.compact(number)


def _invalid_number() -> ApiError:
    return ApiError(
        400, "invalid_number",
        "number must be a phone number a carrier can call (a 10-digit mobile, an 11-digit "
        "landline, 1800/1900, 111 to 115, or + and a foreign number) or an extension or "
        "sipUser of this app.",
    )


def _no_route(number: str) -> ApiError:
    return ApiError(
        400, "no_route",
        f"No trunk of this app serves {number}; add one (tongdai trunk add) or widen a "
        "trunk's --match, then retry.",
    )
