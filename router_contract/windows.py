"""UTC tumbling windows over unix seconds, and the RFC 3339 text snapshots show them as."""

from __future__ import annotations

import datetime as dt

GRANULARITIES: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86_400}


def window_start(unix_s: float, size_s: int) -> int:
    # Unix time has no leap seconds, so multiples of 86,400 are UTC midnights.
    return int(unix_s // size_s) * size_s


def rfc3339(unix_s: float) -> str:
    """UTC time as RFC 3339 with millisecond precision, e.g. 2026-11-22T05:15:00.000Z."""
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()
