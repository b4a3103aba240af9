"""Period arithmetic: windows partition time in every zone, across DST changes and month ends."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.limits.periods import NOMINAL_SECONDS, ROLLING_BUCKETS, Period, PeriodUnit

# Zones with the awkward cases: DST at 02:00 and at midnight (Sao Paulo used to fall back from
# 00:00 to 23:00; Havana springs forward at 00:00), half-hour offsets and a 30-minute DST shift
# (Lord Howe), the date line (Apia skipped 2011-12-30), southern-hemisphere DST.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "America/Havana",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Chatham",
]
CALENDAR = [PeriodUnit.HOUR, PeriodUnit.DAY, PeriodUnit.WEEK, PeriodUnit.MONTH]
# 1990..2037: historical DST rules included
instants = st.floats(min_value=631_152_000, max_value=2_145_916_800, allow_nan=False)


def utc(text: str) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()


@settings(max_examples=400, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), unit=st.sampled_from([*CALENDAR, PeriodUnit.MINUTE]))
def test_windows_partition_time(now: float, zone: str, unit: PeriodUnit) -> None:
    """`now` is in its window, the next window starts exactly at the reset instant, and every
    instant of a window maps back to the same window (same key, same bounds)."""
    period = Period(unit, zone)
    w = period.window(now)
    assert w.start <= now < w.end
    after = period.window(w.end)
    assert after.start == w.end and after.key != w.key
    assert period.window(w.start) == w
    assert period.window(w.end - 0.001) == w
    before = period.window(w.start - 0.001)
    assert before.end == w.start


@settings(max_examples=300, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES))
def test_calendar_windows_start_at_local_boundaries(now: float, zone: str) -> None:
    tz = ZoneInfo(zone)
    day = Period(PeriodUnit.DAY, zone).window(now)
    month = Period(PeriodUnit.MONTH, zone).window(now)
    week = Period(PeriodUnit.WEEK, zone).window(now)
    local_month_start = datetime.datetime.fromtimestamp(month.start, tz)
    assert local_month_start.day == 1 or (local_month_start.day == 2 and zone == "Pacific/Apia")
    assert month.key == "month:" + local_month_start.strftime("%Y-%m")
    # Wall days are 23-25 hours, but Apia's skipped day and Lord Howe's half hours.
    assert 22 * 3600 <= day.end - day.start <= 26 * 3600 or zone == "Pacific/Apia"
    assert 28 * 86_400 - 3_600 <= month.end - month.start <= 31 * 86_400 + 3_600 or zone == "Pacific/Apia"
    assert datetime.datetime.fromtimestamp(week.start, tz).weekday() == 0 or zone == "Pacific/Apia"
    assert month.start <= day.start and day.end <= month.end  # days nest in months


@settings(max_examples=300, deadline=None)
@given(now=instants, unit=st.sampled_from(list(PeriodUnit)))
def test_rolling_windows_never_forget_early(now: float, unit: PeriodUnit) -> None:
    """A rolling window covers at least its duration (never forgets spend early) and at most one
    bucket more; the bucket written now is never below the oldest one that counts."""
    w = Period(unit, rolling=True).window(now)
    duration = NOMINAL_SECONDS[unit]
    bucket_s = duration / ROLLING_BUCKETS
    assert w.start <= now - duration + 0.001
    covered_from = w.oldest_bucket * bucket_s  # the oldest counting bucket's own start
    assert now - duration - bucket_s - 0.001 <= covered_from <= now - duration + 0.001
    assert int(w.field[1:]) >= w.oldest_bucket
    assert duration <= w.end - covered_from <= duration + bucket_s + 0.001
    assert w.end > now


@pytest.mark.parametrize(
    ("unit", "zone", "now", "key", "start", "hours"),
    [
        # Month ends: Berlin's March ends at 22:00 UTC (CEST), February in a leap year.
        (
            PeriodUnit.MONTH,
            "Europe/Berlin",
            "2025-03-31T21:59:59+00:00",
            "month:2025-03",
            "2025-02-28T23:00:00+00:00",
            743,
        ),
        (
            PeriodUnit.MONTH,
            "Europe/Berlin",
            "2025-03-31T22:00:00+00:00",
            "month:2025-04",
            "2025-03-31T22:00:00+00:00",
            720,
        ),
        (
            PeriodUnit.MONTH,
            "UTC",
            "2024-02-29T23:59:59+00:00",
            "month:2024-02",
            "2024-02-01T00:00:00+00:00",
            696,
        ),
        (
            PeriodUnit.MONTH,
            "America/New_York",
            "2025-01-01T04:59:59+00:00",
            "month:2024-12",
            "2024-12-01T05:00:00+00:00",
            744,
        ),
        # DST days: 23 and 25 hours; the repeated 01:00 hour is one two-hour window.
        (
            PeriodUnit.DAY,
            "America/New_York",
            "2025-03-09T12:00:00+00:00",
            "day:2025-03-09",
            "2025-03-09T05:00:00+00:00",
            23,
        ),
        (
            PeriodUnit.DAY,
            "America/New_York",
            "2025-11-02T12:00:00+00:00",
            "day:2025-11-02",
            "2025-11-02T04:00:00+00:00",
            25,
        ),
        (
            PeriodUnit.HOUR,
            "America/New_York",
            "2025-11-02T06:30:00+00:00",
            "hour:2025-11-02T01",
            "2025-11-02T05:00:00+00:00",
            2,
        ),
        # Sao Paulo 2018-02-18: midnight fell back to 23:00 of the 17th; the 17th lasts 25 hours.
        (
            PeriodUnit.DAY,
            "America/Sao_Paulo",
            "2018-02-18T02:30:00+00:00",
            "day:2018-02-17",
            "2018-02-17T02:00:00+00:00",
            25,
        ),
        # ISO weeks start on Monday, in the zone.
        (
            PeriodUnit.WEEK,
            "Asia/Kolkata",
            "2025-01-05T18:29:59+00:00",
            "week:2025-W01",
            "2024-12-29T18:30:00+00:00",
            168,
        ),
    ],
)
def test_known_windows(unit: PeriodUnit, zone: str, now: str, key: str, start: str, hours: int) -> None:
    w = Period(unit, zone).window(utc(now))
    assert (w.key, w.start, (w.end - w.start) / 3600) == (key, utc(start), hours)


def test_minutes_are_utc_whatever_the_zone() -> None:
    w = Period(PeriodUnit.MINUTE, "Asia/Kathmandu").window(utc("2025-06-01T10:00:30+00:00"))
    assert (w.start, w.end) == (utc("2025-06-01T10:00:00+00:00"), utc("2025-06-01T10:01:00+00:00"))


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(Exception, match="Mars"):
        Period(PeriodUnit.DAY, "Mars/Olympus")
