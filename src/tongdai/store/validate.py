"""Checks on what goes into the store; each failure is an ``Invalid`` with one sentence."""

from __future__ import annotations

import re

from tongdai import numbers
from tongdai.store.errors import Invalid

# A SIP user part that needs no escaping in a URI (RFC 3261 §25.1 "unreserved" minus
# the marks that integrators trip over) and fits the devices.sip_user column.
SIP_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")
EXTENSION = re.compile(r"[0-9]{2,8}")
TRUNK_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A DNS name, an IPv4 address or a bare IPv6 address.
HOST = re.compile(r"[A-Za-z0-9._:-]{1,255}")
PREFIX = re.compile(r"[0-9+*#]{0,16}")
# A route prefix, matched against numbers in the form ``numbers.dialable`` gives them:
# national numbers start with 0 (0901..., 028...), service and emergency numbers with 1
# (1900..., 113), numbers abroad with + (+1..., or "+" alone for every one of them).
ROUTE = re.compile(r"(0|1|\+)[0-9]{0,14}")
MAX_ROUTES = 32
MAX_PRIORITY = 1000
TRANSPORTS = ("udp", "tcp")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sip_user(value: str) -> str:
    if not SIP_USER.fullmatch(value):
        raise Invalid(
            f"sip_user {value!r} must be 1 to 64 letters, digits, dots, dashes or underscores"
        )
    if _callable_number(value):
        # The dial plan looks for a device by name before it sends a number out, so a
        # device called 0901234567 would swallow every call to that number.
        raise Invalid(
            f"sip_user {value!r} looks like a phone number, so calls to that number would"
            " ring the device; choose a name, and give it a short number with --extension"
        )
    return value


def _callable_number(value: str) -> bool:
    try:
        numbers.dialable(value)
    except ValueError:
        return False
    return True


def extension(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not EXTENSION.fullmatch(value):
        raise Invalid(f"extension {value!r} must be 2 to 8 digits")
    return value


def text(what: str, value: str, *, max_len: int, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise Invalid(f"{what} must not be empty")
    if len(value) > max_len:
        raise Invalid(f"{what} must be at most {max_len} characters")
    if _CONTROL.search(value):
        raise Invalid(f"{what} must not contain control characters")
    return value


def password(value: str) -> str:
    if not value:
        raise Invalid("password must not be empty")
    if len(value) > 128:
        raise Invalid("password must be at most 128 characters")
    if _CONTROL.search(value):
        raise Invalid("password must not contain control characters")
    return value


def did_number(value: str) -> str:
    """The national form of a DID (see ``tongdai.numbers``)."""
    try:
        number = numbers.normalize(value)
    except ValueError:
        raise Invalid(f"{value!r} is not a phone number") from None
    if len(number) > 20:
        raise Invalid(f"{value!r} is too long for a phone number")
    return number


def trunk(
    *, name: str, host: str, port: int, transport: str, username: str | None,
    password: str | None, prefix: str, strip: int,
) -> None:
    if not TRUNK_NAME.fullmatch(name):
        raise Invalid(
            f"trunk name {name!r} must be 1 to 64 letters, digits, dots, dashes or underscores"
        )
    if not HOST.fullmatch(host):
        raise Invalid(f"trunk host {host!r} must be a host name or an IP address")
    if not 1 <= port <= 65535:
        raise Invalid(f"trunk port {port} must be between 1 and 65535")
    if transport not in TRANSPORTS:
        raise Invalid(f"trunk transport {transport!r} must be udp or tcp")
    if username is not None:
        text("trunk username", username, max_len=128, required=True)
        if password is None:
            # Without the password the carrier's digest challenge cannot be answered:
            # every call would fail with 401/407 long after the trunk was added.
            raise Invalid("a trunk username needs a trunk password (--password)")
    if password is not None:
        if username is None:
            raise Invalid("a trunk password needs a trunk username")
        text("trunk password", password, max_len=128, required=True)
    if not PREFIX.fullmatch(prefix):
        raise Invalid(f"trunk prefix {prefix!r} must be up to 16 of the characters 0-9 + * #")
    if not 0 <= strip <= 15:
        raise Invalid(f"trunk strip {strip} must be between 0 and 15")


def routes(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The number prefixes a trunk serves, from ``"09,03"`` or a list; empty: all.

    Prefixes are written as numbers are routed: in the national form (``09``, not
    ``+849``), since every Vietnamese number is normalised to it before routing.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in items:
        p = raw.strip()
        if not p:
            continue
        if p.startswith("+84"):
            raise Invalid(
                f"trunk route {p!r}: write Vietnamese prefixes in the national form "
                f"(0{p[3:]}), as numbers are routed")
        if not ROUTE.fullmatch(p):
            raise Invalid(
                f"trunk route {p!r} must be digits starting with 0 or 1 (09, 028, 1900), "
                "or + and a country code (+1), or + alone for every foreign number")
        if p not in out:
            out.append(p)
    if len(out) > MAX_ROUTES:
        raise Invalid(f"a trunk serves at most {MAX_ROUTES} prefixes")
    if len(",".join(out)) > 255:
        raise Invalid("the trunk's prefixes must fit in 255 characters")
    return tuple(out)


def priority(value: int) -> int:
    if not 0 <= value <= MAX_PRIORITY:
        raise Invalid(f"trunk priority {value} must be between 0 and {MAX_PRIORITY}")
    return value
