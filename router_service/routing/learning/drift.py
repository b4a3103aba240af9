"""Catching a drop in an arm's quality within a few scores: one-sided Page-Hinkley (CUSUM).

Each score adds `reference - score - slack` to the evidence (floored at 0), where `reference` is
the arm's posterior mean before the score and `slack` tolerates small changes; the alarm rings
once the evidence passes `threshold`. Both are in units of the arm's score spread, so a noisy judge
does not ring it: with slack 0.5 sd and threshold 8 sd, a quality that did not change rings about
once per 10^4 scores (Siegmund's approximation of the in-control run length), a drop of 4 sd (0.9
to 0.45 under a judge with sd 0.1) rings after 2-3 scores, a drop of 2 sd after about 5.

On the alarm the learner keeps only the scores of the current excursion (those since the
evidence last was 0, i.e. roughly the ones after the drop) and forgets the rest, so the arm's
estimate falls at once instead of over a half-life.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_SPREAD = 0.02  # a judge that always gives the same score would otherwise make any dip an alarm


@dataclass(frozen=True, slots=True)
class DriftConfig:
    enabled: bool = True
    slack_sd: float = 0.5  # drops smaller than this many score sds are not worth an alarm
    threshold_sd: float = 8.0  # evidence, in score sds, that rings the alarm
    min_count: float = 8.0  # an arm's reference needs this much (decayed) weight of scores first

    def __post_init__(self) -> None:
        if self.slack_sd < 0 or self.threshold_sd <= 0 or self.min_count < 0:
            raise ValueError("learning.drift: slack_sd >= 0, threshold_sd > 0, min_count >= 0")


class DropDetector:
    """The evidence of a drop, and the sums of the scores that built it."""

    __slots__ = ("evidence", "run_squares", "run_sum", "run_weight")

    def __init__(self) -> None:
        self.evidence = 0.0
        self.run_weight = 0.0
        self.run_sum = 0.0
        self.run_squares = 0.0

    def update(self, reference: float, spread: float, score: float, config: DriftConfig) -> bool:
        """Whether `score` rings the alarm; the detector restarts when it does."""
        sd = max(spread, MIN_SPREAD)
        evidence = self.evidence + (reference - score) / sd - config.slack_sd
        if evidence <= 0.0:
            self.reset()
            return False
        self.evidence = evidence
        self.run_weight += 1.0
        self.run_sum += score
        self.run_squares += score * score
        return evidence > config.threshold_sd

    def reset(self) -> None:
        self.evidence = self.run_weight = self.run_sum = self.run_squares = 0.0
