"""Rollup windows: fixed UTC sizes, calendar weeks and months (month ends, leap days, ISO weeks
across a year), and a zone's calendar windows through DST (router_contract/windows.py)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_contract.windows import ROLLUP_GRAINS, Grain, grain_name, rfc3339, zone_grains


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


# One case a row, all times UTC; a `#` line says what the rows after it show.
TABLE = """
granularity            instant (UTC)        window start      window end        previous start
month                  2026-01-31T23:59:59  2026-01-01        2026-02-01        2025-12-01
month                  2026-02-01T00:00:00  2026-02-01        2026-03-01        2026-01-01
# leap year
month                  2028-02-29T12:00:00  2028-02-01        2028-03-01        2028-01-01
month                  2026-12-31T23:59:59  2026-12-01        2027-01-01        2026-11-01
month                  2027-03-31T08:00:00  2027-03-01        2027-04-01        2027-02-01
# ISO weeks start on Monday; 2026-01-01 is a Thursday, in the week from Monday 2025-12-29.
week                   2026-01-01T10:00:00  2025-12-29        2026-01-05        2025-12-22
week                   2026-11-22T23:59:59  2026-11-16        2026-11-23        2026-11-09
day                    2026-02-28T23:59:59  2026-02-28        2026-03-01        2026-02-27
# Asia/Kolkata is UTC+05:30: its month starts at 18:30 UTC the day before.
month@Asia/Kolkata     2026-01-31T18:29:59  2025-12-31T18:30  2026-01-31T18:30  2025-11-30T18:30
month@Asia/Kolkata     2026-01-31T18:30:00  2026-01-31T18:30  2026-02-28T18:30  2025-12-31T18:30
hour@Asia/Kolkata      2026-05-01T10:00:00  2026-05-01T09:30  2026-05-01T10:30  2026-05-01T08:30
# Berlin falls back at 03:00 CEST (01:00 UTC) on 2026-10-25: local 02:00 lasts two hours.
hour@Europe/Berlin     2026-10-25T01:30:00  2026-10-25T00:00  2026-10-25T02:00  2026-10-24T23:00
day@Europe/Berlin      2026-10-25T12:00:00  2026-10-24T22:00  2026-10-25T23:00  2026-10-23T22:00
# Spring forward at 02:00 CET (01:00 UTC) on 2026-03-29: the skipped hour is no window.
hour@Europe/Berlin     2026-03-29T01:00:00  2026-03-29T01:00  2026-03-29T02:00  2026-03-29T00:00
# New York falls back on Sunday 2026-11-01: the week from Monday 00:00 EDT to Monday 00:00 EST.
week@America/New_York  2026-11-02T04:59:59  2026-10-26T04:00  2026-11-02T05:00  2026-10-19T04
"""
CASES = [line.split() for line in TABLE.splitlines()[2:] if line and not line.startswith("#")]


@pytest.mark.parametrize(("name", "at", "start", "end", "previous"), CASES)
def test_windows_at_month_ends_week_starts_and_dst_changes(
    name: str, at: str, start: str, end: str, previous: str
) -> None:
    grain = Grain(name)
    t = _utc(at)
    assert (grain.start(t), grain.end(grain.start(t)), grain.previous_start(t)) == (
        _utc(start),
        _utc(end),
        _utc(previous),
    )


def test_names_of_zone_granularities() -> None:
    assert grain_name("month", "UTC") == "month"
    assert zone_grains("Europe/Berlin") == (
        "hour@Europe/Berlin",
        "day@Europe/Berlin",
        "week@Europe/Berlin",
        "month@Europe/Berlin",
    )
    for bad in ("fortnight", "minute@Europe/Berlin"):
        with pytest.raises(ValueError, match="unknown rollup granularity"):
            Grain(bad)


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]
NAMES = [*ROLLUP_GRAINS, *(name for zone in ZONES[1:] for name in zone_grains(zone))]
INSTANTS = st.integers(min_value=int(_utc("1990-01-01T00:00:00")), max_value=int(_utc("2060-01-01T00:00:00")))


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(NAMES), t=INSTANTS, steps=st.lists(st.integers(-3 * 86_400, 40 * 86_400), max_size=6)
)
def test_windows_tile_time_whatever_the_order_of_lookups(name: str, t: int, steps: list[int]) -> None:
    """Every instant falls in exactly one window [start, end); the one before ends where it starts;
    and lookups in any order (the cache of recent windows) give what a fresh Grain gives."""
    grain = Grain(name)
    for u in [t + step for step in steps] + [t]:
        start = grain.start(u)
        end = grain.end(start)
        assert start <= u < end
        assert Grain(name).start(u) == start
        previous = grain.previous_start(u)
        assert previous < start and Grain(name).end(previous) == start
        assert grain.start(end) == end and grain.previous_start(end) == start


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), t=INSTANTS)
def test_a_zone_month_starts_at_local_midnight_of_the_first(zone: str, t: int) -> None:
    start = Grain(grain_name("month", zone)).start(t)
    local = dt.datetime.fromtimestamp(start, ZoneInfo(zone))
    assert (local.day, local.hour, local.minute) == (1, 0, 0) or _skipped_midnight(local)
    assert rfc3339(start).endswith("Z")


def _skipped_midnight(local: dt.datetime) -> bool:
    """Where DST skipped 00:00 of the 1st, the month starts past the gap (01:00 that day)."""
    return local.day == 1 and local.hour == 1 and local.minute == 0
