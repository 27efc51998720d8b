"""What a histories request asks for: its filters, its cursor, and the hashes that sign it.

The seed signs ``histories`` with ``sha256(appId + created_from + created_to + limit +
page + appSecret)``. The optional parameters tongdai adds are signed the same way:
after the seed's parameters, in the seed's order, come those of ``EXTRA_PARAMS`` that
the request carries, in that order, then the secret. A request with only the seed's
parameters therefore hashes exactly as before.

One of the vendor's own pages documents another order, ``created_from + created_to +
limit + page + appId + appSecret``; it is accepted too (with the extra parameters
likewise between appId and the secret).
"""

from __future__ import annotations

import base64
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tongdai import numbers
from tongdai.api.correlation import MAX_EXTERNAL_ID
from tongdai.api.errors import bad_param
from tongdai.store import CdrPosition, CdrQuery

DEFAULT_LIMIT = 20

# The filters, in the order they are hashed (after the seed's parameters).
FILTER_PARAMS = ("phone", "status_detail", "direction", "device", "did", "external_id")
# histories: the filters, then the cursor.
EXTRA_PARAMS = (*FILTER_PARAMS, "after")
STATUSES = ("SUCCESS", "BUSY", "CANCELLED", "IVR", "ERROR")
DIRECTIONS = ("from_ab", "to_ab")
_SIP_USER = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# "2026-11-01T08:00:00+07:00" sent without URL-encoding arrives with a space for "+".
_SPACED_OFFSET = re.compile(
    r"(.*\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})", re.ASCII
)
_MAX_CURSOR = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """The filters of a request, validated and in the form the store compares."""

    number: str | None = None  # national form (numbers.normalize)
    status_detail: str | None = None
    direction: str | None = None
    device: str | None = None
    did: str | None = None
    external_id: str | None = None

    def query(self, app_id: str, start_ts: float, end_ts: float) -> CdrQuery:
        return CdrQuery(app_id=app_id, start_ts=start_ts, end_ts=end_ts, number=self.number,
                        status_detail=self.status_detail, direction=self.direction,
                        device=self.device, did=self.did, external_id=self.external_id)


def parse_filters(p: Mapping[str, str | None]) -> Filters:
    """The filters among the raw parameters ``p``; an empty value is no filter."""
    phone, status, direction, device, did, external_id = (
        p.get(n) or None for n in FILTER_PARAMS)
    number = did_number = None
    if phone is not None:
        try:
            number = numbers.normalize(phone)
        except ValueError:
            raise bad_param("phone must be a phone number (3 to 15 digits, optional +; "
                            "spaces, dots, dashes and parentheses are ignored).") from None
    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            raise bad_param(f"status_detail must be one of {', '.join(STATUSES)}.")
    if direction is not None and direction not in DIRECTIONS:
        raise bad_param("direction must be from_ab (outgoing) or to_ab (incoming).")
    if device is not None and not _SIP_USER.fullmatch(device):
        raise bad_param("device must be a sipUser: 1 to 64 letters, digits, '.', '-', '_'.")
    if did is not None:
        try:
            did_number = numbers.normalize(did)
        except ValueError:
            raise bad_param("did must be a phone number, e.g. 02873019555.") from None
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID:
        raise bad_param(f"external_id must be at most {MAX_EXTERNAL_ID} characters.")
    return Filters(number=number, status_detail=status, direction=direction, device=device,
                   did=did_number, external_id=external_id)


def encode_cursor(pos: CdrPosition) -> str:
    """An opaque string naming ``pos``: what the client sends back as ``after``."""
    raw = f"{pos.started_at!r}|{pos.call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> CdrPosition:
    bad = bad_param("after must be the `next` value of an earlier histories response "
                    "(or empty to start).")
    if len(value) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        ts, sep, call_id = raw.partition("|")
        started_at = float(ts)
    except ValueError:  # also binascii.Error and UnicodeDecodeError
        raise bad from None
    if not sep or not call_id or not math.isfinite(started_at):
        raise bad
    return CdrPosition(started_at, call_id)


def as_sent(value: str) -> list[str]:
    """The strings the client may have hashed for a date value."""
    m = _SPACED_OFFSET.fullmatch(value)
    return [value, f"{m[1]}+{m[2]}"] if m else [value]


def history_hash_inputs(
    app_id: str, created_from: str, created_to: str, limit: str | None, page: str | None,
    secret: str, extras: tuple[str, ...] = (), *, paged: bool = True,
) -> Iterator[str]:
    """Every plaintext whose sha256 is an acceptable ``hash`` for these parameters.

    Omitted (or empty) ``limit`` / ``page`` may have been hashed as "" or as the
    default ("20", "1"); integrators do both. ``extras`` are the values of the
    optional parameters present, in ``EXTRA_PARAMS`` order. Both the seed's order
    and the vendor page's (appId after page) are accepted. Without ``paged`` (the
    export) there is no limit or page at all.
    """
    limits = [limit] if limit else ["", str(DEFAULT_LIMIT)] if paged else [""]
    pages = [page] if page else ["", "1"] if paged else [""]
    tail = "".join(extras) + secret
    for f, t, lim, pg in itertools.product(
        as_sent(created_from), as_sent(created_to), limits, pages
    ):
        yield app_id + f + t + lim + pg + tail
        yield f + t + lim + pg + app_id + tail


def present(p: Mapping[str, str | None], names: tuple[str, ...]) -> tuple[str, ...]:
    """The values of the parameters ``names`` the request carries, in that order."""
    return tuple(v for n in names if (v := p.get(n)) is not None)
