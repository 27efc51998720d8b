"""Parse the ``created_from`` / ``created_to`` values of the histories endpoint.

The seed only says "Ngày" (date), so we accept what integrators naturally send and
reject the rest with a message that lists the accepted forms:

- ``YYYY-MM-DD`` (a whole day; as ``created_to`` it means through the end of that day,
  and a time without a fraction, through the end of that second)
- ``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` and the same with ``T`` between date and time
- either of the above followed by ``Z`` or an offset ``±HH:MM`` / ``±HHMM`` (ISO 8601)
- unix seconds: an integer

Values without an offset are local time in the configured zone (``TONGDAI_TIMEZONE``).
An unencoded ``+`` in a query string arrives as a space, so ``...08:00:00 07:00`` is
read as ``+07:00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

ACCEPTED_FORMS = (
    "YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, ISO 8601 such as 2026-11-01T08:00:00+07:00, "
    "or unix seconds"
)

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DATETIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)"
    r"(?P<tz>Z|z|[+\- ]\d{2}:?\d{2})?",
    re.ASCII,
)
_UNIX = re.compile(r"\d{1,18}", re.ASCII)
# Unix seconds stay below 10**11 until the year 5138; bigger is almost surely milliseconds.
_MAX_UNIX_SECONDS = 10**11
# A bare date or whole second as an end bound runs to its last microsecond.
_END_EPSILON = 1e-6


class DateError(ValueError):
    """The value is not one of the accepted forms; ``str()`` is a sentence fragment."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Instant:
    """A parsed bound: ``ts`` is unix seconds where it starts.

    ``whole_day`` is set for a bare date and ``whole_second`` for a time without a
    fraction (and unix seconds): as an end bound each covers that whole day or
    second, so ``created_to=... 23:59:59`` includes a call at 23:59:59.4, the way
    its integer ``unix_timestamp`` shows it.
    """

    ts: float
    whole_day: bool
    whole_second: bool = False


def parse_instant(value: str, tz: tzinfo) -> Instant:
    """Parse one date/time value; naive values are local time in ``tz``."""
    v = value.strip()
    if not v:
        raise DateError(f"must be a date: {ACCEPTED_FORMS}")
    if _UNIX.fullmatch(v):
        n = int(v)
        if n >= _MAX_UNIX_SECONDS:
            raise DateError("looks like unix milliseconds; send unix seconds")
        return Instant(ts=float(n), whole_day=False, whole_second=True)
    if m := _DATE.fullmatch(v):
        try:
            d = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as exc:
            raise DateError(f"is not a real calendar date ({exc})") from None
        return Instant(ts=_local_ts(datetime.combine(d, time()), tz), whole_day=True)
    if m := _DATETIME.fullmatch(v):
        off = m["tz"]
        text = f"{m['date']}T{m['time']}"
        if off and off not in "Zz":
            sign = "-" if off[0] == "-" else "+"
            digits = off[1:].replace(":", "")
            text += f"{sign}{digits[:2]}:{digits[2:]}"
        elif off:
            text += "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise DateError(f"is not a real date and time ({exc})") from None
        ts = _local_ts(dt, tz) if dt.tzinfo is None else dt.timestamp()
        return Instant(ts=ts, whole_day=False, whole_second="." not in m["time"])
    raise DateError(f"must be a date: {ACCEPTED_FORMS}")


def _local_ts(naive: datetime, tz: tzinfo) -> float:
    return naive.replace(tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The inclusive range [start, end] of unix seconds to list."""

    start: float
    end: float


MAX_WINDOW = timedelta(days=31)


class WindowError(ValueError):
    """The window is unusable; ``param`` names the parameter to blame."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_window(created_from: str, created_to: str, tz: tzinfo) -> Window:
    """Both bounds, checked: ``from`` not after ``to`` and at most 31 days apart.

    The span is ``to - from``, where a bare-date ``to`` stands for the end of its day:
    ``2026-01-01`` .. ``2026-01-31`` (31 whole days) and ``2026-01-01 00:00:00`` ..
    ``2026-02-01 00:00:00`` pass; ``2026-01-01`` .. ``2026-02-01`` (32 days) does not.
    The listed range then runs through the end of ``to``'s day or second.
    """
    try:
        lo = parse_instant(created_from, tz)
    except DateError as exc:
        raise WindowError("created_from", f"created_from {exc}.") from None
    try:
        hi = parse_instant(created_to, tz)
    except DateError as exc:
        raise WindowError("created_to", f"created_to {exc}.") from None
    if hi.whole_day:
        try:
            end_excl = _next_local_midnight(hi.ts, tz)
        except (OverflowError, ValueError):
            raise WindowError("created_to", "created_to is past the last supported date.") from None
        # A bare date spans its whole day, so the 31 days count to the day's end.
        span_end = end_excl
    else:
        end_excl = hi.ts + 1.0 if hi.whole_second else hi.ts
        span_end = hi.ts
    if lo.ts > span_end or (lo.ts == span_end and hi.whole_day):
        raise WindowError("created_from", "created_from must not be after created_to.")
    if span_end - lo.ts > MAX_WINDOW.total_seconds():
        raise WindowError(
            "created_to", "created_to must be at most 31 days after created_from."
        )
    end = end_excl - _END_EPSILON if hi.whole_day or hi.whole_second else hi.ts
    return Window(start=lo.ts, end=end)


def _next_local_midnight(midnight_ts: float, tz: tzinfo) -> float:
    # Calendar arithmetic, not +86400: a day with a DST change is 23 or 25 hours long.
    day = datetime.fromtimestamp(midnight_ts, tz).date() + timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=tz).timestamp()
