"""What the route handlers share: the collaborators and a few request helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from fastapi import Request

from tongdai.api.auth import Authenticator
from tongdai.api.errors import CODES, ErrorBody, bad_param
from tongdai.media.protocol import RecordingUrls
from tongdai.pbx.protocol import CallControl
from tongdai.settings import Settings
from tongdai.store.presence import Presence
from tongdai.store.protocol import Configuration, Histories, Tokens


class OpenApiStore(Configuration, Histories, Tokens, Presence, Protocol):
    """What the Open API reads and writes: configuration, call histories, tokens,
    and the devices' registrations for presence."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    settings: Settings
    store: OpenApiStore
    # Configuration reads on the request path (apps, devices, trunks): in the server,
    # a cache in front of ``store`` (``pbx.directory.CachedStore``).
    config: Configuration
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


def error_docs(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error ``codes`` an endpoint can answer
    with (see ``errors.CODES``), one entry per status listing its codes."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        for status in CODES[code][0]:
            by_status.setdefault(status, []).append(f"`{code}`: {CODES[code][1]}")
    return {status: {"model": ErrorBody, "description": "; ".join(texts) + "."}
            for status, texts in sorted(by_status.items())}
