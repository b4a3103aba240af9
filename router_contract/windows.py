"""Rollup windows over unix seconds (UTC tumbling windows, calendar weeks and months, rolling
budget buckets), and the RFC 3339 text snapshots show them as."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from router_contract.calendar import CALENDAR_UNITS, calendar_span

GRANULARITIES: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}


def window_start(unix_s: float, size_s: int) -> int:
    # Unix time has no leap seconds, so multiples of 86,400 are UTC midnights.
    return int(unix_s // size_s) * size_s


def rfc3339(unix_s: float) -> str:
    """UTC time as RFC 3339 with millisecond precision, e.g. 2026-11-22T05:15:00.000Z."""
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


# The costs rollups: the fixed-size UTC windows, and the UTC calendar week and month.
ROLLUP_GRAINS = (*GRANULARITIES, "week", "month")
_ZONE_SEPARATOR = "@"


def grain_name(unit: str, zone: str) -> str:
    """The rollup granularity of a calendar unit in a zone: "month" in UTC, else "month@Europe/Berlin"."""
    return unit if zone == "UTC" else f"{unit}{_ZONE_SEPARATOR}{zone}"


def zone_grains(zone: str) -> tuple[str, ...]:
    """The granularities a rollup keeps for a time zone besides UTC: its calendar hour, day, week
    and month (a zone's hour differs from the UTC hour where the offset is not whole hours, and
    is two hours long where the clock falls back)."""
    return tuple(grain_name(unit, zone) for unit in CALENDAR_UNITS)


class Grain:
    """A rollup granularity by name: "minute", "hour" and "day" are fixed-size UTC windows;
    "week" and "month" are UTC calendar windows; "<unit>@<zone>" ("day@Europe/Berlin") is the
    calendar window of that zone (router_contract/calendar.py), as budget periods count them.

    Window starts are whole Unix seconds (every zone's offset is whole seconds). A calendar
    window's bounds are computed once and reused while events fall in it."""

    __slots__ = ("_recent", "_size", "_unit", "_zone", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        unit, _, zone = name.partition(_ZONE_SEPARATOR)
        self._size = GRANULARITIES.get(name, 0)  # 0: a calendar window
        if not self._size and unit not in CALENDAR_UNITS:
            raise ValueError(f"unknown rollup granularity {name!r}")
        self._unit = unit
        self._zone = ZoneInfo(zone or "UTC")
        self._recent: list[tuple[int, int, int]] = []  # (start, end, previous start), newest last

    def start(self, unix_s: float) -> int:
        """The start of the window `unix_s` falls in."""
        return self._window(unix_s)[0]

    def end(self, start: int) -> int:
        """The end of the window that starts at `start`."""
        return self._window(start)[1]

    def span(self, unix_s: float) -> tuple[int, int]:
        """(start, end) of the window `unix_s` falls in."""
        window = self._window(unix_s)
        return window[0], window[1]

    def previous_start(self, unix_s: float) -> int:
        """The start of the window before the one `unix_s` falls in (a zero-length window, a
        local hour skipped by DST, is no window)."""
        return self._window(unix_s)[2]

    def _window(self, unix_s: float) -> tuple[int, int, int]:
        if self._size:
            start = window_start(unix_s, self._size)
            return start, start + self._size, start - self._size
        for window in self._recent:
            if window[0] <= unix_s < window[1]:
                return window
        span = calendar_span(self._unit, self._zone, unix_s)
        start = int(span.start)
        window = (start, int(span.end), int(calendar_span(self._unit, self._zone, start - 1).start))
        self._recent = [*self._recent[-1:], window]  # the current window and one other (late events)
        return window


# Rolling budgets count the last hour, day, week or 30 days in ROLLING_BUCKETS epoch-aligned
# buckets of duration / ROLLING_BUCKETS (router_service/limits/periods.py); the costs rollups keep
# each limited entity's cost per bucket of the same bounds, so the limits store's bucket counters
# can be reconciled bucket by bucket.
ROLLING_BUCKETS = 24
ROLLING_SECONDS: dict[str, int] = {"hour": 3_600, "day": 86_400, "week": 7 * 86_400, "month": 30 * 86_400}


class RollingGrain:
    """The buckets of one rolling period ("day": 24 one-hour buckets), numbered from the epoch:
    bucket i covers [i * bucket_ms, (i + 1) * bucket_ms). The arithmetic is in whole
    milliseconds, as periods.py counts, so both sides put an instant in the same bucket."""

    __slots__ = ("bucket_ms", "duration_ms", "period")

    def __init__(self, period: str) -> None:
        if period not in ROLLING_SECONDS:
            raise ValueError(f"unknown rolling period {period!r}; expected one of {sorted(ROLLING_SECONDS)}")
        self.period = period
        self.duration_ms = ROLLING_SECONDS[period] * 1000
        self.bucket_ms = self.duration_ms // ROLLING_BUCKETS

    def bucket(self, unix_s: float) -> int:
        """The bucket `unix_s` falls in."""
        return math.floor(unix_s * 1000) // self.bucket_ms

    def span(self, bucket: int) -> tuple[float, float]:
        """(start, end) of a bucket in Unix seconds."""
        return bucket * self.bucket_ms / 1000, (bucket + 1) * self.bucket_ms / 1000

    def oldest(self, unix_s: float) -> int:
        """The oldest bucket the rolling window at `unix_s` still counts (a bucket counts until
        all of it is older than the duration: the window spans ROLLING_BUCKETS + 1 buckets)."""
        return (math.floor(unix_s * 1000) - self.duration_ms) // self.bucket_ms
