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

**One scorer's influence is bounded** (`capped_statistics`). Scores are kept per scorer (the
feedback's API key id), and each scorer's scores count with an effective weight

    w_s = min(n_s, t),   t = max(1, t*),   t* = the largest t with t <= c * W(t),
    W(t) = n_anonymous + sum_s min(n_s, t)

where n_s is the number of scores of scorer s (one per request: a repeated score replaced the
earlier one), c is `max_scorer_share` and W the total effective weight. The mean, deviation and
confidence are then the weighted ones (each scorer's own mean at weight w_s; `effective_count`
is W, and confidence is W / (W + 10)). So:
- once t* >= 1 no scorer holds more than the share c of the weight, whatever it sends: its
  scores (in [0, 1]) move the mean by at most c. Raising its own count raises W only by what it
  adds under the cap, which the fixed point already accounts for (the cap is on a share of the
  capped total, not of the raw total, so spam does not buy itself a larger cap);
- the cap is "water filling" (it trims only the largest contributors, down to a common level),
  the usual robust choice over dropping outliers by score, which would silence an honest minority;
- with too few scorers for any weighting to keep one under c (fewer than 1/c of them), t* < 1
  and every scorer counts as at most one score: one key, one vote. The router's fleet view asks
  for `min_feedback` (5) of effective weight before it uses the mean at all.
- Scores without a scorer key (routers with auth `off`, which trust every caller) count fully,
  each, as before keys existed; they are not capped and they count toward W.
When no cap binds (every w_s = n_s) the statistics are exactly `statistics` of the plain sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MICROS = 1_000_000
PRIOR_WEIGHT = 10
# The share of a model x task's feedback weight one scorer may hold. 0.05 because a scorer at the
# cap moves a mean of scores in [0, 1] by at most this much: the bound issue 13 asks for.
DEFAULT_MAX_SCORER_SHARE = 0.05
ANONYMOUS = ""  # the scorer of feedback given without a key (auth off): not capped


@dataclass(slots=True)
class ScoreSums:
    count: int = 0
    sum_micros: int = 0
    sum_sq_micros2: int = 0  # sum of (score in micros) ** 2

    def add(self, score: float) -> None:
        self.add_micros(round(score * MICROS))

    def add_micros(self, micros: int) -> None:
        self.count += 1
        self.sum_micros += micros
        self.sum_sq_micros2 += micros * micros

    def remove_micros(self, micros: int) -> None:
        """Undo one `add_micros(micros)` (a score replaced by a later one of the same scorer)."""
        self.count -= 1
        self.sum_micros -= micros
        self.sum_sq_micros2 -= micros * micros

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


def scorer_weights(counts: Mapping[str, int], max_share: float) -> dict[str, float]:
    """Each scorer's effective weight (the module docstring's w_s); ANONYMOUS keeps its count."""
    anonymous = counts.get(ANONYMOUS, 0)
    keyed = sorted(n for scorer, n in counts.items() if scorer != ANONYMOUS and n > 0)
    threshold = max(1.0, _water_level(anonymous, keyed, max_share))
    return {
        scorer: float(n) if scorer == ANONYMOUS else min(float(n), threshold) for scorer, n in counts.items()
    }


def _water_level(anonymous: int, counts: list[int], share: float) -> float:
    """t*: the largest t with t <= share * (anonymous + sum(min(n, t))), for sorted `counts`.

    The right side minus t is concave in t and >= 0 at t = 0, so the t where it holds form an
    interval [0, t*]. Between two consecutive counts n_i <= t <= n_(i+1) the sum is the first i
    counts plus (K - i) * t; from the top segment down, the first whose lower end still holds
    contains t*, which is where the linear pieces meet: t = share * (anonymous + prefix) /
    (1 - share * (K - i)).
    """
    k = len(counts)
    prefix = [0]
    for n in counts:
        prefix.append(prefix[-1] + n)
    for i in range(k, -1, -1):
        lower = counts[i - 1] if i > 0 else 0
        base = share * (anonymous + prefix[i])
        slope = share * (k - i)  # d/dt of the right side on this segment
        if base + slope * lower < lower:  # fails at the segment's lower end: t* is below it
            continue
        if slope >= 1:  # never for the top segment (slope 0); lower ones were checked first
            return float(counts[i]) if i < k else math.inf
        return base / (1 - slope)
    return 0.0


def capped_statistics(scorers: Mapping[str, ScoreSums], max_share: float) -> dict[str, Any]:
    """`statistics` of the weighted scores (module docstring), plus `effective_count`."""
    sums = total(scorers.values())
    weights = scorer_weights({scorer: s.count for scorer, s in scorers.items()}, max_share)
    if all(weights[scorer] == s.count for scorer, s in scorers.items()):
        return {**statistics(sums), "effective_count": float(sums.count)}
    weight = sum(weights.values())
    mean_micros = 0.0
    square_micros2 = 0.0
    for scorer, s in scorers.items():
        if s.count:
            share = weights[scorer] / s.count / weight
            mean_micros += share * s.sum_micros
            square_micros2 += share * s.sum_sq_micros2
    stddev = half_width = None
    if weight > 1:
        variance = max(square_micros2 - mean_micros**2, 0.0) * weight / (weight - 1)
        stddev = math.sqrt(variance) / MICROS
        half_width = 1.96 * stddev / math.sqrt(weight)
    return {
        "count": sums.count,
        "mean_score": round(mean_micros / MICROS, 6),
        "stddev": None if stddev is None else round(stddev, 6),
        "ci95_half_width": None if half_width is None else round(half_width, 6),
        "confidence": round(weight / (weight + PRIOR_WEIGHT), 6),
        "effective_count": round(weight, 6),
    }
