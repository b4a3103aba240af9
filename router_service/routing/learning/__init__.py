"""Learning quality online: posteriors per (deployment, request region), exploration, drift.

- `posterior`: exponentially decayed score sums per arm and the Gaussian posterior they give;
- `drift`: a one-sided Page-Hinkley detector per arm that demotes an arm on a significant drop;
- `budget`: how much traffic and spend exploration may take;
- `choice`: the pure decision (Thompson sample vs the exploit pick, within the budget);
- `learner`: the state that ties them together, fed with feedback, read by the planner.

Pure: standard library only; time and randomness come in as arguments.
"""

from __future__ import annotations

from router_service.routing.learning.budget import BudgetConfig, ExplorationBudget
from router_service.routing.learning.choice import Choice, choose
from router_service.routing.learning.drift import DriftConfig, DropDetector
from router_service.routing.learning.learner import LearnerConfig, QualityLearner
from router_service.routing.learning.posterior import ArmStats, Posterior, PosteriorConfig

__all__ = [
    "ArmStats",
    "BudgetConfig",
    "Choice",
    "DriftConfig",
    "DropDetector",
    "ExplorationBudget",
    "LearnerConfig",
    "Posterior",
    "PosteriorConfig",
    "QualityLearner",
    "choose",
]
