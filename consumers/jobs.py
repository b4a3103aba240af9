"""The registry of aggregation jobs: the only map from a job name to its kinds, topic and aggregator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator
from consumers.health.aggregate import HealthAggregator
from consumers.quality.aggregate import QualityAggregator

DEFAULT_INPUT_TOPIC = "llmrouter.events.v1"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    kinds: frozenset[str]  # event kinds the aggregator reads; the runner decodes no others
    snapshot_topic: str
    new_aggregator: Callable[[], Aggregator]

    @property
    def group_id(self) -> str:
        return f"llmrouter-consumer-{self.name}"


JOBS: dict[str, Job] = {
    # Attempts too: a hedge loser that answered after its request did carries a cost of its own.
    "costs": Job("costs", frozenset({"completion", "attempt"}), "llmrouter.costs.v1", CostsAggregator),
    "health": Job("health", frozenset({"attempt"}), "llmrouter.health.v1", HealthAggregator),
    # Decisions and completions feed the join index; feedback events are what is counted.
    "quality": Job(
        "quality",
        frozenset({"decision", "completion", "feedback"}),
        "llmrouter.quality.v1",
        QualityAggregator,
    ),
}


def job_named(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise ValueError(f"unknown consumer {name!r}; expected one of {sorted(JOBS)}") from None
