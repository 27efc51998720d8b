from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tongdai.api.dates import DateError, WindowError, parse_instant, parse_window

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NY = ZoneInfo("America/New_York")
# 2026-11-01 00:00 in Ho Chi Minh City (UTC+7) is 2026-10-31 17:00 UTC.
NOV1_HCM = datetime(2026, 11, 1, tzinfo=HCM).timestamp()


@pytest.mark.parametrize(
    ("text", "expected", "whole_day"),
    [
        ("2026-11-01", NOV1_HCM, True),
        ("2026-11-01 08:00:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T08:00:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01 08:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T08:00:00.250", NOV1_HCM + 8 * 3600 + 0.25, False),
        ("2026-11-01T08:00:00+07:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T01:00:00Z", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T01:00:00z", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T01:00:00+00:00", NOV1_HCM + 8 * 3600, False),
        ("2026-10-31T21:00:00-04:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01T08:00:00+0700", NOV1_HCM + 8 * 3600, False),
        # An unencoded "+" in a query string arrives as a space.
        ("2026-11-01T08:00:00 07:00", NOV1_HCM + 8 * 3600, False),
        ("2026-11-01 08:00:00 07:00", NOV1_HCM + 8 * 3600, False),
        ("1793466000", 1793466000.0, False),
        ("0", 0.0, False),
        ("  2026-11-01  ", NOV1_HCM, True),
    ],
)
def test_accepted_forms(text: str, expected: float, whole_day: bool) -> None:
    got = parse_instant(text, HCM)
    assert got.ts == pytest.approx(expected, abs=1e-6)
    assert got.whole_day is whole_day


def test_naive_values_follow_the_configured_zone() -> None:
    assert parse_instant("2026-11-01", HCM).ts == datetime(2026, 10, 31, 17, tzinfo=UTC).timestamp()
    assert parse_instant("2026-11-01", ZoneInfo("UTC")).ts == datetime(
        2026, 11, 1, tzinfo=UTC).timestamp()
    # New York is UTC-4 on 2026-10-31 (EDT) and UTC-5 on 2026-11-02 (EST).
    assert parse_instant("2026-10-31 12:00:00", NY).ts == datetime(
        2026, 10, 31, 16, tzinfo=UTC).timestamp()
    assert parse_instant("2026-11-02 12:00:00", NY).ts == datetime(
        2026, 11, 2, 17, tzinfo=UTC).timestamp()
    # An explicit offset wins over the zone.
    assert parse_instant("2026-11-01T00:00:00Z", NY).ts == datetime(
        2026, 11, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must be a date"),
        ("yesterday", "must be a date"),
        ("01/11/2026", "must be a date"),
        ("2026-13-01", "real calendar date"),
        ("2026-02-30", "real calendar date"),
        ("2026-11-01T25:00:00", "real date and time"),
        ("2026-11-01T08:00:00+25:00", "real date and time"),
        ("2026-11-01T08:00:00+07", "must be a date"),
        ("1793466000000", "milliseconds"),
        ("-5", "must be a date"),
        ("1.5", "must be a date"),
        ("\uff12\uff10\uff12\uff16-11-01", "must be a date"),  # full-width digits
        ("2026-11-01T", "must be a date"),
    ],
)
def test_rejected_forms(text: str, fragment: str) -> None:
    with pytest.raises(DateError, match=fragment):
        parse_instant(text, HCM)


def test_bare_date_as_end_runs_through_the_day() -> None:
    w = parse_window("2026-11-01", "2026-11-01", HCM)
    assert w.start == NOV1_HCM
    assert NOV1_HCM + 86399.999 < w.end < NOV1_HCM + 86400


def test_an_end_with_whole_seconds_covers_that_second() -> None:
    w = parse_window("2026-11-01 08:00:00", "2026-11-01 09:00:00", HCM)
    assert NOV1_HCM + 9 * 3600 + 0.999 < w.end < NOV1_HCM + 9 * 3600 + 1
    w = parse_window("1793466000", "1793469600", HCM)
    assert 1793469600.999 < w.end < 1793469601
    w = parse_window("2026-11-01 08:00:00", "2026-11-01T09:00:00.250", HCM)
    assert w.end == NOV1_HCM + 9 * 3600 + 0.25


def test_bare_date_end_in_a_dst_zone_spans_the_long_day() -> None:
    # 2026-11-01 is 25 hours long in New York (EDT ends).
    w = parse_window("2026-11-01", "2026-11-01", NY)
    assert 25 * 3600 - 0.001 < w.end - w.start < 25 * 3600


def test_the_31_day_rule_at_the_boundary() -> None:
    parse_window("2026-01-01", "2026-01-31", HCM)  # 31 whole days
    with pytest.raises(WindowError) as exc:
        parse_window("2026-01-01", "2026-02-01", HCM)  # 32 whole days
    assert exc.value.param == "created_to"
    parse_window("2026-01-01 00:00:00", "2026-02-01 00:00:00", HCM)  # exactly 31 x 24 h
    with pytest.raises(WindowError):
        parse_window("2026-01-01 00:00:00", "2026-02-01 00:00:01", HCM)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    parse_window(str(start), str(start + 31 * 86400), HCM)
    with pytest.raises(WindowError):
        parse_window(str(start), str(start + 31 * 86400 + 1), HCM)


def test_from_after_to_blames_created_from() -> None:
    with pytest.raises(WindowError) as exc:
        parse_window("2026-11-02", "2026-11-01", HCM)
    assert exc.value.param == "created_from"
    assert "after" in str(exc.value)
    parse_window("2026-11-01 10:00:00", "2026-11-01 10:00:00", HCM)  # an instant is fine


def test_errors_name_the_parameter() -> None:
    with pytest.raises(WindowError, match=r"^created_from ") as e1:
        parse_window("soon", "2026-11-01", HCM)
    assert e1.value.param == "created_from"
    with pytest.raises(WindowError, match=r"^created_to ") as e2:
        parse_window("2026-11-01", "later", HCM)
    assert e2.value.param == "created_to"


def test_far_dates_are_errors_not_crashes() -> None:
    with pytest.raises(WindowError):
        parse_window("9999-12-01", "9999-12-31", HCM)
    parse_window("0001-01-01", "0001-01-02", HCM)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
       st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_iso_with_offset_round_trips(dt: datetime, minutes: int) -> None:
    tz = timezone(timedelta(minutes=minutes))
    aware = dt.replace(tzinfo=tz)
    text = aware.isoformat(sep="T", timespec="microseconds")
    assert parse_instant(text, HCM).ts == pytest.approx(aware.timestamp(), abs=1e-6)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_date_error(text: str) -> None:
    with contextlib.suppress(DateError):
        parse_instant(text, HCM)


@given(st.text(max_size=30), st.text(max_size=30))
def test_any_window_parses_or_raises_window_error(a: str, b: str) -> None:
    try:
        w = parse_window(a, b, HCM)
    except WindowError:
        return
    assert w.start <= w.end
