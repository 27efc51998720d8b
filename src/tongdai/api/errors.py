"""Every error the Open API answers with: JSON ``{"code", "message"}`` and a status.

``code`` is stable and machine-readable; ``message`` is one sentence for a person,
naming the parameter at fault.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tongdai.api")


# Every ``code`` tongdai's HTTP server answers with: its status and when. The OpenAPI
# document and docs/open-api.md are made to list them all (tests/api/test_openapi.py
# checks the source for codes missing here or in the doc).
CODES: dict[str, tuple[tuple[int, ...], str]] = {
    "invalid_parameter": ((400,), "a parameter or the body is malformed; the message names it"),
    "invalid_external_id": ((400,), "click-to-call: external_id is not a string of 1 to "
                                    "128 characters without control characters, or is "
                                    "given both in the query and the body"),
    "invalid_metadata": ((400,), "click-to-call: metadata is not a JSON object of at most "
                                 "1024 bytes (compact JSON), or is given both in the query "
                                 "and the body"),
    "invalid_number": ((400,), "click-to-call: the number is neither a phone number a "
                               "carrier can call nor an extension or sipUser of the app"),
    "no_route": ((400,), "click-to-call: none of the app's trunks serves the number"),
    "device_offline": ((400,), "click-to-call: the device has no live registration"),
    "unauthorized": ((401,), "missing or wrong app id, hash or device password, or a "
                             "device of another app"),
    "recording_link_invalid": ((403,), "a recording URL whose signature does not match"),
    "recording_link_expired": ((403,), "a recording URL past its expiry"),
    "not_found": ((404,), "no such endpoint, or a recording the app does not have"),
    "recording_not_found": ((404,), "a signed recording URL whose file is gone"),
    "call_not_found": ((404,), "call control: no call in progress with that call_id in "
                               "the app (another app's call, or one that has ended)"),
    "call_not_answered": ((409,), "call control: hold, resume or transfer of a call that "
                                  "is not answered yet"),
    "not_recording": ((409,), "call control: a recording command on a call that is not "
                              "recorded"),
    "transfer_in_progress": ((409,), "call control: the call is already being transferred"),
    "method_not_allowed": ((405,), "the endpoint does not take that HTTP method"),
    "too_large": ((413, 414), "a body over 16 KiB (413) or a query string over 4 KiB (414)"),
    "upgrade_required": ((426,), "the websocket path requested over plain HTTP"),
    "rate_limited": ((429,), "too many failed authentications from this address; see "
                             "Retry-After"),
    "app_rate_limited": ((429,), "the app is over its request limit (TONGDAI_API_APP_RATE, "
                                 "TONGDAI_API_APP_BURST); see Retry-After"),
    "internal_error": ((500,), "a failure of the server; the body says nothing more"),
}


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str = Field(description="Stable and machine-readable: " + ", ".join(
        f"`{c}`" for c in CODES) + ".", examples=["invalid_number"])
    message: str = Field(description="One sentence for a person, naming what is wrong.")


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_param(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message}, status_code=status, headers=dict(headers or {})
    )


_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid_parameter", "The request is malformed."),
    404: ("not_found", "There is no such endpoint; see /docs for the Open API."),
    405: ("method_not_allowed", "This endpoint does not accept that HTTP method."),
    413: ("too_large", "The request body is too large."),
    414: ("too_large", "The query string is too long."),
}


def _describe_validation(errors: list[Any]) -> str:
    # FastAPI reports e.g. loc=("query", "limit"), msg="Input should be a valid integer".
    if not errors:
        return "The request is malformed."
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "header", "path")]
    name = loc[0] if loc else "request"
    if err.get("type") == "missing":
        return f"{name} is required."
    if err.get("type") == "json_invalid":
        return "The request body is not valid JSON."
    msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{name} is invalid: {msg[:1].lower()}{msg[1:]}."


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Any other status the framework might raise still gets a documented code.
    other = ("invalid_parameter" if exc.status_code < 500 else "internal_error",
             "The request failed.")
    code, message = _HTTP_CODES.get(exc.status_code, other)
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_parameter", _describe_validation(list(exc.errors())))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
