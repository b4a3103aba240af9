"""Budget and rate-limit periods: which window an instant falls in, and when that window resets.

Calendar periods (hour, day, week, month) follow the wall clock of one configured IANA time zone.
A window is the time between two consecutive boundaries, and boundary `i` is the instant the wall
clock first reads the start of local hour/day/ISO week/month number `i` (`fold=0`). Boundaries are
instants, so windows partition time exactly, with no gap or overlap, whatever DST does:
- a wall time skipped by a spring-forward gap maps to the instant after the gap, so a skipped
  local hour is a window of length zero, which no instant falls in;
- a repeated (fall-back) local hour is one window of two hours: "01:00 that night lasts twice";
- a day starts at its first 00:00, even where midnight itself repeats (Brazil used to fall back
  from 00:00 to 23:00).
The window key is the local label ("month:2025-03"): every replica configured with the same zone
derives the same key, which is how replicas share one counter.

Minutes (rate limits) are UTC minutes: Envoy's global rate limit service counts the same way, and
a time zone changes nothing at that scale.

Rolling periods count the last `duration` seconds in `ROLLING_BUCKETS` buckets. A bucket counts
until the whole of it is older than `duration`, so the window covers between `duration` and
`duration + bucket` seconds: spend is never forgotten early (never an overspend), at the price of
remembering it for up to one bucket (1/24 of the period) longer.

Standard library only; `now` is always an argument (Unix seconds).
"""

from __future__ import annotations

import datetime
import enum
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

ROLLING_BUCKETS = 24

_UTC = datetime.UTC


class PeriodUnit(enum.Enum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# Rolling durations; a rolling "month" is 30 days.
NOMINAL_SECONDS = {
    PeriodUnit.MINUTE: 60,
    PeriodUnit.HOUR: 3_600,
    PeriodUnit.DAY: 86_400,
    PeriodUnit.WEEK: 7 * 86_400,
    PeriodUnit.MONTH: 30 * 86_400,
}


@dataclass(frozen=True, slots=True)
class Window:
    """The window `now` falls in. Spend is written to `field` of the counter named by `key`; a
    rolling counter also drops every bucket below `oldest_bucket` (-1: calendar, one field)."""

    key: str  # "month:2025-03", "rolling-day"
    start: float
    end: float  # the reset instant: the count of this window stops counting then
    field: str = "u"
    oldest_bucket: int = -1


@dataclass(frozen=True, slots=True)
class Period:
    unit: PeriodUnit
    zone: str = "UTC"  # an IANA name, e.g. "Europe/Berlin"
    rolling: bool = False

    def __post_init__(self) -> None:
        ZoneInfo(self.zone)  # ZoneInfoNotFoundError for an unknown zone, at config time

    @property
    def describe(self) -> str:
        """Words for errors and `routerctl`: "month (Europe/Berlin)", "rolling day"."""
        if self.rolling:
            return f"rolling {self.unit.value}"
        if self.unit is PeriodUnit.MINUTE:
            return "minute"
        return f"{self.unit.value} ({self.zone})"

    def window(self, now: float) -> Window:
        if self.rolling:
            return _rolling(self.unit, now)
        # A calendar window holds for its whole length: the zone arithmetic runs once per window
        # (a few microseconds each) instead of once per request and limit.
        cached = _LAST_WINDOW.get(self)
        if cached is not None and cached.start <= now < cached.end:
            return cached
        if self.unit is PeriodUnit.MINUTE:
            i = math.floor(now / 60)
            window = Window(f"minute:{i}", i * 60.0, i * 60.0 + 60.0)
        else:
            window = _calendar(self.unit, ZoneInfo(self.zone), now)
        _LAST_WINDOW[self] = window
        return window


# Period -> the window last computed for it (a handful of entries: one per configured period).
_LAST_WINDOW: dict[Period, Window] = {}


def _rolling(unit: PeriodUnit, now: float) -> Window:
    duration_ms = NOMINAL_SECONDS[unit] * 1000
    bucket_ms = duration_ms // ROLLING_BUCKETS
    now_ms = math.floor(now * 1000)
    bucket = now_ms // bucket_ms
    oldest = (now_ms - duration_ms) // bucket_ms
    # The oldest bucket stops counting once all of it is older than the duration.
    end_ms = (oldest + 1) * bucket_ms + duration_ms
    return Window(
        f"rolling-{unit.value}",
        (now_ms - duration_ms) / 1000,
        end_ms / 1000,
        field=f"u{bucket}",
        oldest_bucket=oldest,
    )


def _calendar(unit: PeriodUnit, zone: ZoneInfo, now: float) -> Window:
    local = datetime.datetime.fromtimestamp(now, zone)
    i = _local_index(unit, local)
    # The local index is the answer but for instants near a DST change at a boundary: then the
    # window is the last boundary at or before now (two steps at most either way).
    while _boundary(unit, zone, i) > now:
        i -= 1
    while _boundary(unit, zone, i + 1) <= now:
        i += 1
    return Window(f"{unit.value}:{_label(unit, i)}", _boundary(unit, zone, i), _boundary(unit, zone, i + 1))


def _local_index(unit: PeriodUnit, local: datetime.datetime) -> int:
    ordinal = local.date().toordinal()
    if unit is PeriodUnit.HOUR:
        return ordinal * 24 + local.hour
    if unit is PeriodUnit.DAY:
        return ordinal
    if unit is PeriodUnit.WEEK:
        return (ordinal - 1) // 7  # ordinal 1, 0001-01-01, was a Monday: ISO weeks
    return local.year * 12 + local.month - 1


def _wall(unit: PeriodUnit, i: int) -> datetime.datetime:
    """The naive local wall time that starts window number `i`."""
    if unit is PeriodUnit.HOUR:
        day = datetime.date.fromordinal(i // 24)
        return datetime.datetime(day.year, day.month, day.day, i % 24)
    if unit is PeriodUnit.DAY:
        day = datetime.date.fromordinal(i)
    elif unit is PeriodUnit.WEEK:
        day = datetime.date.fromordinal(i * 7 + 1)
    else:
        day = datetime.date(i // 12, i % 12 + 1, 1)
    return datetime.datetime(day.year, day.month, day.day)


def _boundary(unit: PeriodUnit, zone: ZoneInfo, i: int) -> float:
    # fold=0: an ambiguous wall time is its first occurrence; a skipped one maps past the gap.
    return _wall(unit, i).replace(tzinfo=zone, fold=0).timestamp()


def _label(unit: PeriodUnit, i: int) -> str:
    wall = _wall(unit, i)
    if unit is PeriodUnit.HOUR:
        return wall.strftime("%Y-%m-%dT%H")
    if unit is PeriodUnit.DAY:
        return wall.strftime("%Y-%m-%d")
    if unit is PeriodUnit.WEEK:
        year, week, _ = wall.isocalendar()
        return f"{year}-W{week:02d}"
    return wall.strftime("%Y-%m")
