"""What the route handlers share: the collaborators and a few request helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from fastapi import Request

from tongdai.api.auth import Authenticator
from tongdai.api.errors import ErrorBody, bad_param
from tongdai.media.protocol import RecordingUrls
from tongdai.pbx.protocol import CallControl
from tongdai.settings import Settings
from tongdai.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    settings: Settings
    store: Store
    calls: CallControl
    recordings: RecordingUrls
    auth: Authenticator
    clock: Callable[[], float]
    tz: tzinfo


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def single_params(request: Request, names: tuple[str, ...]) -> dict[str, str | None]:
    """The raw string of each named query parameter (None if absent).

    A parameter given twice is refused: the hash covers one value, and guessing
    which one the client meant would make the signature ambiguous.
    """
    out: dict[str, str | None] = {}
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise bad_param(f"{name} must be given once.")
        out[name] = values[0] if values else None
    return out


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses an endpoint can return."""
    text = {
        400: "Bad input; `code` is `invalid_parameter` (the message names the parameter)"
             " or, for click-to-call, `device_offline`.",
        401: "`unauthorized`: missing or wrong app id, hash or device password.",
        404: "`not_found`: no such recording for this app.",
        413: "`too_large`: the body is over 16 KiB.",
        414: "`too_large`: the query string is over 4 KiB.",
        429: "`rate_limited`: too many failed authentications from this address; "
             "see Retry-After.",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}
