"""Feedback scores of one model x task: integer sums per UTC day, and the statistics readers use.

Scores are kept as integer micro-units (score 0.75 -> 750,000) with their squares, so sums are
exact, independent of the order records are added in, and partitions merge by addition.

Derived fields (over the days kept):
- `mean_score`: the mean feedback score;
- `stddev`: the sample standard deviation (null below 2 scores);
- `ci95_half_width`: 1.96 * stddev / sqrt(count), the half width of a normal-approximation 95%
  confidence interval of the mean (null below 2 scores);
- `confidence`: count / (count + 10), in [0, 1): how much weight a router may give the mean
  against its own prior (10 scores: 0.5; 90 scores: 0.9).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MICROS = 1_000_000
PRIOR_WEIGHT = 10


@dataclass(slots=True)
class ScoreSums:
    count: int = 0
    sum_micros: int = 0
    sum_sq_micros2: int = 0  # sum of (score in micros) ** 2

    def add(self, score: float) -> None:
        micros = round(score * MICROS)
        self.count += 1
        self.sum_micros += micros
        self.sum_sq_micros2 += micros * micros

    def merge(self, other: ScoreSums) -> None:
        self.count += other.count
        self.sum_micros += other.sum_micros
        self.sum_sq_micros2 += other.sum_sq_micros2

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "score_sum_micros": str(self.sum_micros),
            "score_sq_sum_micros2": str(self.sum_sq_micros2),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreSums:
        return cls(int(data["count"]), int(data["score_sum_micros"]), int(data["score_sq_sum_micros2"]))


def total(sums: Iterable[ScoreSums]) -> ScoreSums:
    out = ScoreSums()
    for item in sums:
        out.merge(item)
    return out


def statistics(sums: ScoreSums) -> dict[str, Any]:
    n = sums.count
    if n == 0:
        return {"count": 0, "mean_score": None, "stddev": None, "ci95_half_width": None, "confidence": 0.0}
    mean = sums.sum_micros / n / MICROS
    stddev = None
    half_width = None
    if n > 1:
        # Integer numerator: no catastrophic cancellation, and never negative.
        variance_micros2 = (n * sums.sum_sq_micros2 - sums.sum_micros**2) / (n * (n - 1))
        stddev = math.sqrt(max(variance_micros2, 0.0)) / MICROS
        half_width = 1.96 * stddev / math.sqrt(n)
    return {
        "count": n,
        "mean_score": round(mean, 6),
        "stddev": None if stddev is None else round(stddev, 6),
        "ci95_half_width": None if half_width is None else round(half_width, 6),
        "confidence": round(n / (n + PRIOR_WEIGHT), 6),
    }
