"""Calendar windows (hour, day, ISO week, month) on the wall clock of an IANA time zone.

Shared by the router's budget periods (router_service/limits/periods.py) and the costs
consumer's week and month rollups, so that a budget and the rollup that reconciles it agree on
every window to the second.

A window is the time between two consecutive boundaries, and boundary `i` is the instant the wall
clock first reads the start of local hour/day/ISO week/month number `i` (`fold=0`). Boundaries are
instants, so windows partition time exactly, with no gap or overlap, whatever DST does:
- a wall time skipped by a spring-forward gap maps to the instant after the gap, so a skipped
  local hour is a window of length zero, which no instant falls in;
- a repeated (fall-back) local hour is one window of two hours: "01:00 that night lasts twice";
- a day starts at its first 00:00, even where midnight itself repeats (Brazil used to fall back
  from 00:00 to 23:00).
The label is the local name of the window ("2025-03", "2025-W09", "2025-03-01T05").

Standard library only; `now` is always an argument (Unix seconds).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

CALENDAR_UNITS = ("hour", "day", "week", "month")


@dataclass(frozen=True, slots=True)
class Span:
    """The calendar window an instant falls in: [start, end) in Unix seconds."""

    label: str
    start: float
    end: float


def calendar_span(unit: str, zone: ZoneInfo, now: float) -> Span:
    """The `unit` ("hour", "day", "week" or "month") window of `zone` that `now` falls in."""
    local = datetime.datetime.fromtimestamp(now, zone)
    i = _local_index(unit, local)
    # The local index is the answer but for instants near a DST change at a boundary: then the
    # window is the last boundary at or before now (two steps at most either way).
    while _boundary(unit, zone, i) > now:
        i -= 1
    while _boundary(unit, zone, i + 1) <= now:
        i += 1
    return Span(_label(unit, i), _boundary(unit, zone, i), _boundary(unit, zone, i + 1))


def _local_index(unit: str, local: datetime.datetime) -> int:
    ordinal = local.date().toordinal()
    if unit == "hour":
        return ordinal * 24 + local.hour
    if unit == "day":
        return ordinal
    if unit == "week":
        return (ordinal - 1) // 7  # ordinal 1, 0001-01-01, was a Monday: ISO weeks
    if unit == "month":
        return local.year * 12 + local.month - 1
    raise ValueError(f"not a calendar unit: {unit!r} (one of {', '.join(CALENDAR_UNITS)})")


def _wall(unit: str, i: int) -> datetime.datetime:
    """The naive local wall time that starts window number `i`."""
    if unit == "hour":
        day = datetime.date.fromordinal(i // 24)
        return datetime.datetime(day.year, day.month, day.day, i % 24)
    if unit == "day":
        day = datetime.date.fromordinal(i)
    elif unit == "week":
        day = datetime.date.fromordinal(i * 7 + 1)
    else:
        day = datetime.date(i // 12, i % 12 + 1, 1)
    return datetime.datetime(day.year, day.month, day.day)


def _boundary(unit: str, zone: ZoneInfo, i: int) -> float:
    # fold=0: an ambiguous wall time is its first occurrence; a skipped one maps past the gap.
    return _wall(unit, i).replace(tzinfo=zone, fold=0).timestamp()


def _label(unit: str, i: int) -> str:
    wall = _wall(unit, i)
    if unit == "hour":
        return wall.strftime("%Y-%m-%dT%H")
    if unit == "day":
        return wall.strftime("%Y-%m-%d")
    if unit == "week":
        year, week, _ = wall.isocalendar()
        return f"{year}-W{week:02d}"
    return wall.strftime("%Y-%m")
