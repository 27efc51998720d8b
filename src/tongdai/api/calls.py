"""Call control: the app's live calls, and commands on one of them.

``GET /oapi/v1/calls`` lists the app's calls in progress; ``POST
/oapi/v1/calls/{call_id}/{hangup|hold|resume|transfer|recording/pause|
recording/resume}`` acts on one. ``call_id`` is the id click-to-call returns and
every event carries. Headers as for the devices endpoint: ``x-auth-app-id`` and
``x-auth-app-hash`` = sha256(appId + appSecret). A call of another app, an unknown
call and one that has ended are all 404 ``call_not_found``, so nobody learns which
calls other apps have.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, Field

from tongdai.api.context import ApiContext, client_of, error_docs
from tongdai.api.docs import required
from tongdai.api.errors import ApiError, bad_param, unauthorized
from tongdai.pbx.protocol import (
    CallRefused,
    ControlOp,
    DeviceOffline,
    InvalidNumber,
    NoRoute,
    Side,
)
from tongdai.store import AppRec

CALLS_PATH = "/oapi/v1/calls"
MAX_TO_LEN = 64
_HEADERS = ("x-auth-app-id", "x-auth-app-hash")
_SIDES = ("caller", "callee")

_REFUSED: dict[str, tuple[int, str]] = {
    "call_not_found": (404, "There is no call in progress with this call_id in this app."),
    "call_not_answered": (409, "The call is not answered yet; only an answered call can "
                               "be held, resumed or transferred."),
    "not_recording": (409, "This call is not being recorded (the app does not record its "
                           "calls)."),
    "transfer_in_progress": (409, "The call is being transferred; wait for "
                                  "call.transferred or call.transfer_failed."),
}


class LiveCall(BaseModel):
    """A call in progress, as call control sees it."""

    call_id: str
    state: Literal["ringing", "talking", "ended"] = Field(
        description="`ringing` until both sides talk, then `talking`; `ended` in the "
                    "answer to a hangup.")
    direction: str = Field(description="`from_ab` (from a device) or `to_ab` (to a DID).")
    caller: dict[str, Any]
    callee: dict[str, Any]
    did_number: str | None = None
    started_at: float
    answered_at: float | None = None
    held: Literal["caller", "callee"] | None = Field(
        None, description="The party put on hold through this API, if any.")
    recording: bool = Field(description="Whether the call is being recorded.")
    recording_paused: bool
    transferring: bool = Field(description="A transfer is ringing its target.")
    devices: list[str] = Field(description="The app's devices (sipUser) in the call.")


class LiveCallList(BaseModel):
    data: list[LiveCall]


class PartyBody(BaseModel):
    party: Literal["caller", "callee"] | None = Field(
        None, description="Whom to hold or resume; by default the party that is not the "
                          "app's device (the callee of an outgoing call, the caller of an "
                          "incoming one).")


class TransferBody(BaseModel):
    to: str = Field(description="A device of the app (sipUser or extension, e.g. `alice`, "
                                "`102`) or a phone number a trunk of the app serves "
                                "(e.g. `0901234567`), or a queue of the app "
                                "(`queue:sales`): the caller then waits there.")
    replace: Literal["caller", "callee"] | None = Field(
        None, description="The side that leaves; by default the app's device (the caller "
                          "of an outgoing call, the callee of an incoming one).")


def _body_doc(model: type[BaseModel], needed: bool) -> dict[str, Any]:
    return {"requestBody": {"required": needed, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


async def _json(request: Request, *, needed: bool) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if needed:
            raise bad_param("The request body is required: a JSON object.")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_param("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_param("The request body must be a JSON object.")
    return body


def _side(body: dict[str, Any], name: str) -> Side | None:
    allowed = {name}
    extra = set(body) - allowed - ({"to"} if name == "replace" else set())
    if extra:
        raise bad_param(f"Unknown field {sorted(extra)[0]}; see /docs.")
    value = body.get(name)
    if value is None:
        return None
    if value not in _SIDES:
        raise bad_param(f"{name} must be \"caller\" or \"callee\".")
    return "caller" if value == "caller" else "callee"


def _refused(exc: CallRefused) -> ApiError:
    status, message = _REFUSED.get(exc.code, (409, "The call cannot do that now."))
    return ApiError(status, exc.code, message)


def calls_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["Call control"])
    app_id_h = Header(None, alias="x-auth-app-id", description="The app id (appId).")
    app_hash_h = Header(None, alias="x-auth-app-hash",
                        description="sha256(appId + appSecret), hex.")
    call_id_p = Path(description="The call's id, as click-to-call returns it and events "
                                 "carry it.", max_length=64)
    common = ("unauthorized", "too_large", "rate_limited", "app_rate_limited")

    async def app_of(request: Request, app_id: str | None, given: str | None) -> AppRec:
        client = client_of(request)
        ctx.auth.check_not_blocked(client)
        if not app_id:
            raise unauthorized("The x-auth-app-id header is required.")
        if not given:
            raise unauthorized("The x-auth-app-hash header is required: "
                               "sha256(appId + appSecret).")
        return await ctx.auth.app_by_hash(client, app_id, given, lambda s: (app_id + s,))

    @router.get(
        CALLS_PATH, response_model=LiveCallList,
        summary="The app's calls in progress",
        description="Every call of the app this server is carrying now, ringing or "
                    "talking: the `call_id` to control it with, its parties, whether a "
                    "party is held, whether it records and whether that is paused.",
        responses=error_docs(*common), openapi_extra=required(*_HEADERS),
    )
    async def live_calls(request: Request, x_auth_app_id: str | None = app_id_h,
                         x_auth_app_hash: str | None = app_hash_h) -> Any:
        app = await app_of(request, x_auth_app_id, x_auth_app_hash)
        return {"data": ctx.calls.live_calls(app.app_id)}

    def command(op: ControlOp, path: str, summary: str, description: str,
                codes: tuple[str, ...], party: bool = False) -> None:
        extra: dict[str, Any] = {**required(*_HEADERS)}
        if party:
            extra.update(_body_doc(PartyBody, False))

        @router.post(
            f"{CALLS_PATH}/{{call_id}}/{path}", response_model=LiveCall, summary=summary,
            description=description, name=f"call_{op}",
            responses=error_docs("call_not_found", *codes, *common,
                                 *(("invalid_parameter",) if party else ())),
            openapi_extra=extra,
        )
        async def run(request: Request, call_id: str = call_id_p,
                      x_auth_app_id: str | None = app_id_h,
                      x_auth_app_hash: str | None = app_hash_h) -> Any:
            app = await app_of(request, x_auth_app_id, x_auth_app_hash)
            side = _side(await _json(request, needed=False), "party") if party else None
            try:
                return ctx.calls.control(app_id=app.app_id, call_id=call_id, op=op,
                                         party=side)
            except CallRefused as exc:
                raise _refused(exc) from None

    command("hangup", "hangup", "Hang up a call",
            "Ends the call on both sides, ringing or answered; its record says "
            "`hangup_by: api` (a call hung up while it rang is CANCELLED, or IVR if it "
            "came in).", ())
    command("hold", "hold", "Hold a party",
            "Puts one party on hold: it is re-INVITEd with `a=inactive`, so it neither "
            "hears nor is heard; the other party's line stays as it is. Body (optional): "
            "`{\"party\": \"caller\" | \"callee\"}`, by default the party that is not the "
            "app's device. Event `call.held`.", ("call_not_answered", "transfer_in_progress"),
            party=True)
    command("resume", "resume", "Resume a held party",
            "Takes the party off hold (re-INVITE with `a=sendrecv`): both hear each other "
            "again. Same body as hold. Event `call.resumed`.",
            ("call_not_answered", "transfer_in_progress"), party=True)
    command("pause_recording", "recording/pause", "Pause the recording",
            "Nothing of the call's audio is kept from now until resume (e.g. while a "
            "card number is read out): the recording holds silence for that time and "
            "still lasts the whole call. Event `call.recording_paused`.",
            ("not_recording",))
    command("resume_recording", "recording/resume", "Resume the recording",
            "Records again from now. Event `call.recording_resumed`.", ("not_recording",))

    @router.post(
        f"{CALLS_PATH}/{{call_id}}/transfer", response_model=LiveCall,
        summary="Transfer a call",
        description="Rings `to` in place of one side of the answered call (by default "
                    "the app's device: the agent hands the other party on). When `to` "
                    "answers, the side it replaces gets BYE and `call.transferred` is "
                    "published; if it is busy or does not answer, the call stays as it "
                    "was and `call.transfer_failed` is published. The call keeps one "
                    "record: its replaced side (caller or callee) becomes `to`, the "
                    "party who talked last. To a queue (`queue:NAME`), nobody is rung: "
                    "the replaced side gets BYE at once and the other waits in the "
                    "queue as a flow's caller does (`call.transferred`, then "
                    "`call.queued`; an agent answering is `call.answered`).",
        responses=error_docs("call_not_found", "call_not_answered", "transfer_in_progress",
                             "invalid_parameter", "invalid_number", "no_route",
                             "device_offline", *common),
        openapi_extra={**required(*_HEADERS), **_body_doc(TransferBody, True)},
    )
    async def transfer(request: Request, call_id: str = call_id_p,
                       x_auth_app_id: str | None = app_id_h,
                       x_auth_app_hash: str | None = app_hash_h) -> Any:
        app = await app_of(request, x_auth_app_id, x_auth_app_hash)
        body = await _json(request, needed=True)
        to = body.get("to")
        if isinstance(to, int) and not isinstance(to, bool):
            to = str(to)
        if not isinstance(to, str) or not to.strip():
            raise bad_param("to is required: a device of the app or a phone number.")
        if len(to) > MAX_TO_LEN:
            raise bad_param(f"to must be at most {MAX_TO_LEN} characters.")
        replace = _side(body, "replace")
        try:
            return await ctx.calls.transfer(app_id=app.app_id, call_id=call_id,
                                            to=to.strip(), replace=replace)
        except CallRefused as exc:
            raise _refused(exc) from None
        except InvalidNumber:
            raise ApiError(400, "invalid_number", "to must be a device of this app, one of "
                                                  "its queues or a phone number a carrier "
                                                  "can call.") from None
        except NoRoute:
            raise ApiError(400, "no_route", f"No trunk of this app serves {to}.") from None
        except DeviceOffline:
            raise ApiError(400, "device_offline", f"Device {to} is not registered.") from None

    return router
