"""The registry of aggregation jobs: the only map from a job name to its kinds, topic and aggregator."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from consumers.health.aggregate import HealthAggregator
from consumers.quality.aggregate import QualityAggregator, QualityConfig
from router_contract.quality_scores import DEFAULT_MAX_SCORER_SHARE

DEFAULT_INPUT_TOPIC = "llmrouter.events.v1"
COST_TAG_DIMENSIONS_ENV = "COST_TAG_DIMENSIONS"
COST_TIME_ZONES_ENV = "COST_TIME_ZONES"
QUALITY_MAX_SCORER_SHARE_ENV = "QUALITY_MAX_SCORER_SHARE"


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What a deployment chooses about the aggregations (consumer flags, or the environment)."""

    # Caller tag keys whose values are cost-rollup dimensions; no other tag becomes a key.
    cost_tag_dimensions: frozenset[str] = frozenset()
    # IANA zones besides UTC whose calendar hours/days/weeks/months the cost rollups keep too
    # (--cost-time-zones, COST_TIME_ZONES): those of the routers' `limits.time_zone`.
    cost_time_zones: tuple[str, ...] = ()
    # The share of a model x task's feedback weight one scorer (API key) may hold
    # (router_contract/quality_scores.py); written into every quality value, readers apply it.
    quality_max_scorer_share: float = DEFAULT_MAX_SCORER_SHARE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobOptions:
        """From COST_TAG_DIMENSIONS ("feature,env"), COST_TIME_ZONES ("Europe/Berlin") and
        QUALITY_MAX_SCORER_SHARE ("0.05"); unset or empty: the defaults."""
        env = os.environ if env is None else env
        share = env.get(QUALITY_MAX_SCORER_SHARE_ENV, "").strip()
        return cls(
            cost_tag_dimensions=tag_keys(env.get(COST_TAG_DIMENSIONS_ENV, "").split(",")),
            cost_time_zones=time_zones(env.get(COST_TIME_ZONES_ENV, "")),
            quality_max_scorer_share=float(share) if share else DEFAULT_MAX_SCORER_SHARE,
        )


def time_zones(text: str) -> tuple[str, ...]:
    """IANA zones from "Europe/Berlin, America/New_York": sorted, without UTC (always kept), each
    checked (ZoneInfoNotFoundError for a name that is none: a typo fails at startup instead of
    leaving that zone's budgets unreconciled)."""
    zones = tuple(sorted(tag_keys(text.split(",")) - {"UTC"}))
    for zone in zones:
        ZoneInfo(zone)
    return zones


def tag_keys(names: Iterable[str]) -> frozenset[str]:
    """Tag keys from a list as people write one ("feature, env", trailing commas): stripped,
    empty entries dropped."""
    return frozenset(stripped for name in names if (stripped := name.strip()))


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    kinds: frozenset[str]  # event kinds the aggregator reads; the runner decodes no others
    snapshot_topic: str
    make_aggregator: Callable[[JobOptions], Aggregator]
    options: JobOptions = JobOptions()

    @property
    def group_id(self) -> str:
        return f"llmrouter-consumer-{self.name}"

    def new_aggregator(self) -> Aggregator:
        return self.make_aggregator(self.options)

    def configured(self, options: JobOptions) -> Job:
        return dataclasses.replace(self, options=options)


def _costs(options: JobOptions) -> Aggregator:
    return CostsAggregator(
        CostsConfig(tag_dimensions=options.cost_tag_dimensions, time_zones=options.cost_time_zones)
    )


def _quality(options: JobOptions) -> Aggregator:
    return QualityAggregator(QualityConfig(max_scorer_share=options.quality_max_scorer_share))


JOBS: dict[str, Job] = {
    # Attempts too: a hedge loser that answered after its request did carries a cost of its own.
    "costs": Job("costs", frozenset({"completion", "attempt"}), "llmrouter.costs.v1", _costs),
    "health": Job("health", frozenset({"attempt"}), "llmrouter.health.v1", lambda _: HealthAggregator()),
    # Decisions and completions feed the join index; feedback events are what is counted.
    "quality": Job(
        "quality",
        frozenset({"decision", "completion", "feedback"}),
        "llmrouter.quality.v1",
        _quality,
    ),
}


def job_named(name: str, options: JobOptions | None = None) -> Job:
    try:
        job = JOBS[name]
    except KeyError:
        raise ValueError(f"unknown consumer {name!r}; expected one of {sorted(JOBS)}") from None
    return job if options is None else job.configured(options)
