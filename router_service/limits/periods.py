"""Budget and rate-limit periods: which window an instant falls in, and when that window resets.

Calendar periods (hour, day, week, month) follow the wall clock of one configured IANA time zone
(router_contract/calendar.py: how DST gaps and repeats are handled). The window key is the local
label ("month:2025-03"): every replica configured with the same zone derives the same key, which
is how replicas share one counter.

Minutes (rate limits) are UTC minutes: Envoy's global rate limit service counts the same way, and
a time zone changes nothing at that scale.

Rolling periods count the last `duration` seconds in `ROLLING_BUCKETS` buckets. A bucket counts
until the whole of it is older than `duration`, so the window covers between `duration` and
`duration + bucket` seconds: spend is never forgotten early (never an overspend), at the price of
remembering it for up to one bucket (1/24 of the period) longer.

Standard library only; `now` is always an argument (Unix seconds).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from router_contract.calendar import calendar_span
from router_contract.windows import ROLLING_BUCKETS, ROLLING_SECONDS

# ROLLING_BUCKETS and the durations are the contract's: the costs rollups keep rolling spend in the
# same buckets, so that reconciliation can correct the store bucket by bucket.


class PeriodUnit(enum.Enum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# Rolling durations (a rolling "month" is 30 days): the contract's, plus the minute (rate limits'
# window, which no rollup keeps in buckets).
NOMINAL_SECONDS = {PeriodUnit.MINUTE: 60, **{PeriodUnit(name): s for name, s in ROLLING_SECONDS.items()}}


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
    # The arithmetic is shared with the costs consumer's rollups (router_contract/calendar.py),
    # so a budget's window and the rollup window that reconciles it are the same instants.
    span = calendar_span(unit.value, zone, now)
    return Window(f"{unit.value}:{span.label}", span.start, span.end)
