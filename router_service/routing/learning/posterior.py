"""Decayed score sums per arm (deployment x request region) and the posterior they give.

Scores are in [0, 1]. An arm keeps the weight, sum and sum of squares of its scores, each decayed
by half every `half_life_s` of event time, so a model that changes is re-learned in a few half-lives
instead of being averaged with a week of its old self. The posterior of the mean is Gaussian:

- mean: the configured prior, worth `prior_strength` pseudo-scores, moved by the decayed scores;
- variance of one score: `prior_variance` (pseudo-weighted the same way) blended with the scores'
  own spread, so a noisy judge keeps an arm uncertain longer than a consistent one;
- uncertainty of the mean (`sd`): sqrt(variance / (prior_strength + weight)).

A Gaussian rather than a Beta: sampling it is one `gauss()` (Beta sampling is two gamma draws,
too slow for 50 candidates per request), and judge scores are not coin flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PosteriorConfig:
    half_life_s: float = 86_400.0  # scores lose half their weight per this much event time
    prior_strength: float = 1.0  # pseudo-scores the configured prior is worth
    prior_variance: float = 0.04  # variance of one score before any is seen (sd 0.2)

    def __post_init__(self) -> None:
        if self.half_life_s <= 0 or self.prior_strength <= 0 or self.prior_variance <= 0:
            raise ValueError("learning: half_life_s, prior_strength and prior_variance must be > 0")


@dataclass(frozen=True, slots=True)
class Posterior:
    mean: float
    sd: float  # uncertainty of the mean
    count: float  # decayed number of scores it rests on
    score_sd: float  # spread of one score (judge noise plus the arm's own variation)

    def upper(self, z: float) -> float:
        return self.mean + z * self.sd

    def lower(self, z: float) -> float:
        return self.mean - z * self.sd


class ArmStats:
    """Decayed weight, sum and sum of squares of one arm's scores, as of `time_s`."""

    __slots__ = ("sum", "sum_squares", "time_s", "weight")

    def __init__(self, time_s: float = 0.0) -> None:
        self.weight = 0.0
        self.sum = 0.0
        self.sum_squares = 0.0
        self.time_s = time_s

    def add(self, score: float, time_s: float, half_life_s: float) -> None:
        self.decay_to(time_s, half_life_s)
        self.weight += 1.0
        self.sum += score
        self.sum_squares += score * score

    def decay_to(self, time_s: float, half_life_s: float) -> None:
        """Age the sums to `time_s`; an earlier time (an out-of-order score) ages nothing."""
        if time_s <= self.time_s:
            return
        factor = _decay(time_s - self.time_s, half_life_s)
        self.weight *= factor
        self.sum *= factor
        self.sum_squares *= factor
        self.time_s = time_s

    def replace(self, weight: float, total: float, squares: float) -> None:
        """Forget everything but the given sums (the scores since a detected drop)."""
        self.weight, self.sum, self.sum_squares = weight, total, squares

    def posterior(self, prior: float, config: PosteriorConfig, now_s: float) -> Posterior:
        """The posterior at `now_s` (sums aged to it without changing the arm)."""
        factor = _decay(now_s - self.time_s, config.half_life_s) if now_s > self.time_s else 1.0
        return posterior(self.weight * factor, self.sum * factor, self.sum_squares * factor, prior, config)


def posterior(
    weight: float, total: float, squares: float, prior: float, config: PosteriorConfig
) -> Posterior:
    k = config.prior_strength
    n = k + weight
    mean = (k * prior + total) / n
    spread = 0.0
    if weight > 0:
        own_mean = total / weight
        spread = max(squares / weight - own_mean * own_mean, 0.0) * weight
    variance = (k * config.prior_variance + spread) / n
    return Posterior(mean, math.sqrt(variance / n), weight, math.sqrt(variance))


def prior_posterior(prior: float, config: PosteriorConfig) -> Posterior:
    """An arm never scored: the prior alone."""
    variance = config.prior_variance
    return Posterior(prior, math.sqrt(variance / config.prior_strength), 0.0, math.sqrt(variance))


def _decay(elapsed_s: float, half_life_s: float) -> float:
    return math.exp(-math.log(2.0) * elapsed_s / half_life_s)
