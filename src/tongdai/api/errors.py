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
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tongdai.api")


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str
    message: str


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
    code, message = _HTTP_CODES.get(exc.status_code, ("error", "The request failed."))
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_parameter", _describe_validation(list(exc.errors())))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
