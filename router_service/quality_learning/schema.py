"""The `learning:` config section (pydantic, at the edge) and its conversion to runtime values.

Every field is documented with its default in config/example.yaml. Nothing to switch on: a
router builds a learner exactly when a policy's strategy uses `learned` (README "Routing that
learns"); the section only tunes it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from router_service.routing.learning import (
    BudgetConfig,
    DriftConfig,
    LearnerConfig,
    PosteriorConfig,
)
from router_service.schema_base import StrictModel


class ExplorationSettings(StrictModel):
    """How much of the traffic and the spend probes of uncertain candidates may take."""

    traffic_share: Annotated[float, Field(ge=0, le=1)] = 0.10
    spend_share: Annotated[float, Field(ge=0, le=1)] = 0.10
    window_half_life_s: Annotated[float, Field(gt=0)] = 3_600.0  # both shares kept over this window


class DriftSettings(StrictModel):
    """The per-arm drop detector (one-sided Page-Hinkley), in units of the arm's score spread."""

    enabled: bool = True
    slack_sd: Annotated[float, Field(ge=0)] = 1.0  # drops smaller than this are not worth an alarm
    threshold_sd: Annotated[float, Field(gt=0)] = 4.0  # evidence that rings the alarm
    min_count: Annotated[float, Field(ge=0)] = 8.0  # decayed scores an arm needs before it can ring


class LearningConfig(StrictModel):
    """Quality learned online per (deployment, request region) for policies using `learned`."""

    half_life_s: Annotated[float, Field(gt=0)] = 86_400.0  # a score's weight halves per this much time
    prior_strength: Annotated[float, Field(gt=0)] = 1.0  # pseudo-scores the configured prior is worth
    prior_variance: Annotated[float, Field(gt=0)] = 0.04  # one score's variance before any is seen
    # A quality floor excludes a candidate only when even mean + floor_z * sd is below it.
    floor_z: Annotated[float, Field(ge=0)] = 2.0
    exploration: ExplorationSettings = ExplorationSettings()
    drift: DriftSettings = DriftSettings()
    max_arms: Annotated[int, Field(ge=1)] = 100_000  # (deployment, region) arms; least recent forgotten
    backoff: bool = True  # an arm's prior is its deployment's posterior over all regions

    def to_learner_config(self) -> LearnerConfig:
        exploration, drift = self.exploration, self.drift
        return LearnerConfig(
            posterior=PosteriorConfig(
                half_life_s=self.half_life_s,
                prior_strength=self.prior_strength,
                prior_variance=self.prior_variance,
            ),
            drift=DriftConfig(
                enabled=drift.enabled,
                slack_sd=drift.slack_sd,
                threshold_sd=drift.threshold_sd,
                min_count=drift.min_count,
            ),
            exploration=BudgetConfig(
                traffic_share=exploration.traffic_share,
                spend_share=exploration.spend_share,
                half_life_s=exploration.window_half_life_s,
            ),
            floor_z=self.floor_z,
            max_arms=self.max_arms,
            backoff=self.backoff,
        )
