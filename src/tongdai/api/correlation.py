"""Click-to-call correlation: the integrator's ``external_id`` and ``metadata``.

Both are optional and come back in every event of the call and in its history record.
They may be sent in the body (a JSON object's ``external_id`` string and ``metadata``
object; in a form body ``metadata`` is JSON text) or as query parameters (``metadata``
as JSON text), but each in one place only. An empty value is no value. A request
without them is answered exactly as before.

The limits keep every event of a call small and every store able to hold the values:
``external_id`` is 1 to ``MAX_EXTERNAL_ID`` characters without control characters;
``metadata`` is a JSON object whose compact UTF-8 JSON is at most
``MAX_METADATA_BYTES`` bytes, without NaN or infinities (not JSON) and without NUL
characters (PostgreSQL text cannot hold them).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tongdai.api.errors import ApiError

MAX_EXTERNAL_ID = 128
MAX_METADATA_BYTES = 1024
NAMES = ("external_id", "metadata")


@dataclass(frozen=True, slots=True, kw_only=True)
class Correlation:
    external_id: str | None = None
    metadata: dict[str, Any] | None = None


def invalid_external_id(why: str) -> ApiError:
    return ApiError(400, "invalid_external_id", f"external_id {why}.")


def invalid_metadata(why: str) -> ApiError:
    return ApiError(400, "invalid_metadata", f"metadata {why}.")


def correlation(body: Mapping[str, Any], query: Mapping[str, str | None], *,
                form: bool) -> Correlation:
    """The correlation a click-to-call request carries (``body``: its parsed body;
    ``query``: its query parameters ``NAMES``; ``form``: the body was a form, whose
    values are all text)."""
    given = {n: v for n in NAMES if (v := body.get(n)) is not None and v != ""}
    asked = {n: v for n in NAMES if (v := query.get(n))}
    twice = "is given both in the query and in the body; send it once"
    if "external_id" in given and "external_id" in asked:
        raise invalid_external_id(twice)
    if "metadata" in given and "metadata" in asked:
        raise invalid_metadata(twice)
    # metadata is JSON text in a query or a form; in a JSON body, an object.
    text = form or "metadata" not in given
    found = {**asked, **given}
    return Correlation(external_id=external_id(found.get("external_id")),
                       metadata=metadata(found.get("metadata"), text=text))


def external_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a CRM's numeric ticket id
    if not isinstance(value, str):
        raise invalid_external_id("must be a string")
    if not value or len(value) > MAX_EXTERNAL_ID:
        raise invalid_external_id(f"must be 1 to {MAX_EXTERNAL_ID} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise invalid_external_id("must not contain control characters")
    return value


def metadata(value: Any, *, text: bool) -> dict[str, Any] | None:
    """``value`` as the metadata object; ``text``: it may be JSON text to parse."""
    if value is None:
        return None
    if isinstance(value, str) and text:
        if len(value) > 4 * MAX_METADATA_BYTES:
            raise _too_large()
        try:
            value = json.loads(value, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise invalid_metadata("must be a JSON object, e.g. "
                                   '{"ticket": "T-1042"}') from None
    if not isinstance(value, dict):
        raise invalid_metadata('must be a JSON object, e.g. {"ticket": "T-1042"}')
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        raise invalid_metadata("must be valid Unicode text") from None
    except (ValueError, RecursionError):  # NaN or Infinity, from a JSON body
        raise invalid_metadata("must not hold NaN or infinite numbers") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise _too_large()
    if _has_nul(value):
        raise invalid_metadata("must not contain NUL characters")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _too_large() -> ApiError:
    return invalid_metadata(f"must be at most {MAX_METADATA_BYTES} bytes as compact JSON")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")
