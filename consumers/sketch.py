"""A mergeable histogram with log-spaced buckets (the DDSketch idea), for latency quantiles.

Bucket i holds values in (gamma**(i-1), gamma**i] with gamma = (1 + a) / (1 - a); reporting a
bucket as 2 * gamma**i / (gamma + 1) is within a relative error `a` of every value in it. Two
sketches with the same `a` merge by adding bucket counts, exactly, in any order: that is what lets
each consumer publish one sketch per input partition and every reader merge them into fleet-wide
quantiles. Memory is one dict entry per occupied bucket: with a = 1%, 1 ms to 10 min spans about
670 buckets at most, and real latencies occupy a few dozen.

Values are non-negative numbers (milliseconds here); zero and negatives count in a zero bucket.
JSON form: {"relative_accuracy": 0.01, "zero_count": 0, "bins": {"<index>": count, ...}}.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_RELATIVE_ACCURACY = 0.01


class LogHistogram:
    __slots__ = ("_bins", "_gamma", "_log_gamma", "count", "relative_accuracy", "zero_count")

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._bins: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0

    def add(self, value: float, count: int = 1) -> None:
        self.count += count
        if value <= 0:
            self.zero_count += count
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._bins[index] = self._bins.get(index, 0) + count

    def merge(self, other: LogHistogram) -> None:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("cannot merge sketches of different relative accuracy")
        self.count += other.count
        self.zero_count += other.zero_count
        for index, count in other._bins.items():
            self._bins[index] = self._bins.get(index, 0) + count

    def quantile(self, q: float) -> float | None:
        """The value at rank ceil(q * count) (nearest rank), within the relative accuracy; None if empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = self.zero_count
        if seen >= rank:
            return 0.0
        for index in sorted(self._bins):
            seen += self._bins[index]
            if seen >= rank:
                return 2 * self._gamma**index / (self._gamma + 1)
        raise AssertionError("bucket counts do not add up to count")

    def to_json(self) -> dict[str, Any]:
        return {
            "relative_accuracy": self.relative_accuracy,
            "zero_count": self.zero_count,
            "bins": {str(index): count for index, count in sorted(self._bins.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogHistogram:
        sketch = cls(float(data["relative_accuracy"]))
        sketch.zero_count = int(data["zero_count"])
        sketch._bins = {int(index): int(count) for index, count in data["bins"].items()}
        sketch.count = sketch.zero_count + sum(sketch._bins.values())
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable
