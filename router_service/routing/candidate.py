"""Candidates as a policy sees them: per-deployment facts laid out in columns, computed once.

Built when a policy is compiled (`routing.compiled`), never per request. The request path reads
plain tuples indexed by candidate position instead of walking Deployment, Price and quality
mappings (and hashing enums, which is slow Python code in 3.11) for every candidate: with 50
candidates that is the difference between tens and hundreds of microseconds per decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from router_service.catalog import TOKENS_PER_PRICE_UNIT, Deployment
from router_service.domain import DataSensitivity, TaskType

TASK_INDEX: Mapping[TaskType, int] = {task: i for i, task in enumerate(TaskType)}
SENSITIVITY_RANK: Mapping[DataSensitivity, int] = {
    DataSensitivity.PUBLIC: 0,
    DataSensitivity.INTERNAL: 1,
    DataSensitivity.RESTRICTED: 2,
}

# The request path looks enum members up through these instead: an Enum member hashes in Python
# code (`Enum.__hash__`), which makes a dict lookup keyed by one several times slower than one
# keyed by its value, a plain str whose hash is cached.
_TASK_INDEX_BY_VALUE: Mapping[str, int] = {task.value: i for task, i in TASK_INDEX.items()}
_SENSITIVITY_RANK_BY_VALUE: Mapping[str, int] = {s.value: rank for s, rank in SENSITIVITY_RANK.items()}


def task_index(task: TaskType) -> int:
    """TASK_INDEX[task], faster."""
    return _TASK_INDEX_BY_VALUE[task._value_]


def sensitivity_rank(sensitivity: DataSensitivity) -> int:
    """SENSITIVITY_RANK[sensitivity], faster."""
    return _SENSITIVITY_RANK_BY_VALUE[sensitivity._value_]


ExclusionKey = tuple[int, int, frozenset[str]]


class CandidateTable:
    """Candidates in configuration order; every column is a tuple indexed by position."""

    __slots__ = (
        "cached_fractions",
        "cached_prices",
        "capabilities",
        "context_windows",
        "deployments",
        "distinct_cached_fractions",
        "exclusion_memo",
        "floor_memo",
        "index_of",
        "input_prices",
        "keys",
        "largest_context_window",
        "max_outputs",
        "models",
        "output_prices",
        "pinned_count",
        "price_tier_of",
        "price_tiers",
        "price_unit",
        "providers",
        "quality_by_task",
        "quality_known",
        "sensitivity_ranks",
        "smallest_context_window",
        "smallest_max_output",
        "static_reasons",
        "tasks",
        "unknown_quality",
        "weight_columns",
    )

    def __init__(
        self,
        deployments: Sequence[Deployment],
        static_reasons: Sequence[str | None],
        pinned_count: int = 0,
    ) -> None:
        ds = tuple(deployments)
        self.deployments = ds
        # The first `pinned_count` are the caller's pinned model: they go first whatever they score.
        self.pinned_count = pinned_count
        # Why the policy itself rules each one out, whatever the request (region, providers).
        self.static_reasons = tuple(static_reasons)
        self.keys = tuple(d.key for d in ds)
        self.index_of = {key: i for i, key in enumerate(self.keys)}
        self.providers = tuple(d.provider for d in ds)
        self.models = tuple(d.model for d in ds)
        self.context_windows = tuple(d.context_window for d in ds)
        self.max_outputs = tuple(d.max_output_tokens for d in ds)
        # A request needing no more than these cannot fail the window or output checks: most
        # requests, which then skip a pass over every candidate.
        self.smallest_context_window = min(self.context_windows, default=0)
        self.smallest_max_output = min(self.max_outputs, default=0)
        # A request needing more than this fits no candidate at all: the caller's to fix.
        self.largest_context_window = max(self.context_windows, default=0)
        self.sensitivity_ranks = tuple(SENSITIVITY_RANK[d.max_sensitivity] for d in ds)
        self.capabilities = tuple(d.capabilities for d in ds)
        self.tasks = tuple(d.tasks for d in ds)
        # Prices per `price_unit` tokens: nano-USD per million tokens divided by their greatest
        # common factor with a million. Exact, and for real prices (whole or half nano-USD per
        # token) the cost arithmetic stays in machine-size integers instead of big ones.
        prices = [
            (d.price.input_nanos_per_mtok, d.price.cached_input_nanos_per_mtok, d.price.output_nanos_per_mtok)
            for d in ds
        ]
        common = math.gcd(TOKENS_PER_PRICE_UNIT, *(p for triple in prices for p in triple))
        self.price_unit = TOKENS_PER_PRICE_UNIT // common
        self.input_prices = tuple(p[0] // common for p in prices)
        self.cached_prices = tuple(p[1] // common for p in prices)
        self.output_prices = tuple(p[2] // common for p in prices)
        self.cached_fractions = tuple(min(max(d.expected_cached_fraction, 0.0), 1.0) for d in ds)
        # Few distinct fractions (one per provider or so): the cost model converts each one to
        # cached tokens once per request, then each price tier picks its own by slot.
        self.distinct_cached_fractions = tuple(dict.fromkeys(self.cached_fractions))
        slots = [self.distinct_cached_fractions.index(f) for f in self.cached_fractions]
        # Deployments often share a price list (a model served in several regions, or by several
        # providers at list price): the cost model prices each distinct (input, cached, output,
        # cached fraction slot) once per request, and each candidate takes its tier's cost.
        tiers = list(zip(self.input_prices, self.cached_prices, self.output_prices, slots, strict=True))
        self.price_tiers = tuple(dict.fromkeys(tiers))
        tier_index = {tier: i for i, tier in enumerate(self.price_tiers)}
        self.price_tier_of = tuple(tier_index[tier] for tier in tiers)
        # quality_by_task[TASK_INDEX[task]][i]: the prior estimate of candidate i for task (its
        # configured prior, else its default, else the mean of its priors: `Deployment.quality_for`).
        self.quality_by_task = tuple(tuple(d.quality_for(task) for d in ds) for task in TaskType)
        # Whether that estimate is known: False for a deployment with no prior at all, which
        # ranks with a neutral 0.5 but which quality floors do not exclude until feedback
        # makes it known. `unknown_quality` lists those (usually none), so the floor check
        # does no per-candidate work for them in the common case.
        self.quality_known = tuple(d.quality_known for d in ds)
        self.unknown_quality = tuple(i for i, known in enumerate(self.quality_known) if not known)
        # `filters` memoizes categorical exclusions here, keyed by (sensitivity rank, task index,
        # required capabilities): (reason per candidate, indices not excluded).
        self.exclusion_memo: dict[ExclusionKey, tuple[tuple[str | None, ...], tuple[int, ...]]] = {}
        # ... and quality floors checked against these priors, keyed by (task index, floor): the
        # reason per candidate a floor excludes (known prior below it, not pinned), None for the
        # others.
        self.floor_memo: dict[tuple[int, float], tuple[str | None, ...]] = {}
        # The weighted strategy keeps each candidate's weight here, keyed by the strategy's id
        # (the entry holds the strategy, so the id cannot be reused while the entry exists).
        self.weight_columns: dict[int, tuple[object, tuple[float, ...]]] = {}

    def __len__(self) -> int:
        return len(self.keys)
