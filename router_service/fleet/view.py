"""The fleet view, built from the newest snapshot record per key (pure: no I/O, no clock).

The merging of input partitions is the consumers' own reader code (`consumers/*/view.py`), so
the router and the consumers cannot disagree on what a snapshot means. Two things are the
router's: freshness (a topic with no record for `stale_after_s` is ignored: its consumer is down
or cut off) and the wall-clock slide of the health window (a consumer slides its window by event
time, so a partition that gets no events keeps its last window; the router drops slots that
ended before `now - window`, with the router's own, shorter `health_window_s`; the failures since
the last success slide the same way, while a breaker a router reported open counts until its
cooldown ends, even once its slots have slid out).

What the consumers say of their own freshness is the router's to show too (`TopicFreshness`, from
each input partition's latest checkpoint): a topic whose consumers are replaying or catching up
after a restart is still used, but flagged (metrics, routerctl), since its sums read short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from router_contract.cost_totals import Totals
from router_contract.health_score import PROVIDER_ERRORS
from router_contract.readers.costs import fleet_totals
from router_contract.readers.health import fleet_health
from router_contract.readers.quality import fleet_quality
from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key
from router_contract.snapshot_records import PHASE_LIVE, JsonDict
from router_contract.windows import parse_rfc3339
from router_service.domain import TaskType
from router_service.fleet.config import FleetConfig

# Snapshot record values by record key (None: tombstone), as a compacted topic keeps them.
Latest = Mapping[str, JsonDict | None]


class Topic(Enum):
    HEALTH = "health"
    QUALITY = "quality"
    COSTS = "costs"


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    score: float  # router_contract/health_score.py, in [0, 1]
    judged: int  # successes + provider errors in the window
    attempts: int
    error_rate: float
    latency_p95_s: float | None  # successful attempts; None without samples
    ttft_p95_s: float | None
    # Failing now (router_contract/health_recent.py): the score is capped by the failures since
    # the last success or by routers' open breakers, which `open_breakers` names.
    failing: bool = False
    open_breakers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QualityStats:
    mean: float
    count: int
    confidence: float  # count / (count + 10)


@dataclass(frozen=True, slots=True)
class TopicFreshness:
    """What a topic's consumers said of their state in each input partition's latest checkpoint."""

    catching_up: bool  # some partition is replaying or behind: sums read short, rates stale
    lag_count: int  # input records not counted yet, summed over partitions
    watermark_s: float | None  # the oldest partition watermark (event time); None: no events yet
    partitions: int  # input partitions with a checkpoint


@dataclass(frozen=True, slots=True)
class FleetView:
    """What the fleet saw. Empty maps for stale or unread topics: the router then uses local state."""

    health: Mapping[str, DeploymentHealth] = field(default_factory=dict)  # by "provider/model"
    quality: Mapping[tuple[str, TaskType], QualityStats] = field(default_factory=dict)  # (model, task)
    costs: Latest = field(default_factory=dict)  # raw records; see `cost_totals`
    stale: frozenset[Topic] = frozenset(Topic)  # topics ignored as stale or never read
    freshness: Mapping[Topic, TopicFreshness] = field(default_factory=dict)  # topics with checkpoints

    def cost_totals(self, granularity: str, start_s: int) -> dict[str, Totals]:
        """{dimension ("team=search", "total=all"...): exact totals of the window starting at start_s}.

        For budget checks: the fleet's spend in the current minute/hour/day window."""
        return fleet_totals(self.costs, granularity, start_s)


EMPTY = FleetView()


def stale_topics(
    newest_record_s: Mapping[Topic, float], now_s: float, config: FleetConfig
) -> frozenset[Topic]:
    """Topics whose newest record (by its timestamp) is older than `stale_after_s`, or that have none."""
    return frozenset(
        topic for topic in Topic if now_s - newest_record_s.get(topic, float("-inf")) > config.stale_after_s
    )


def build_view(
    latest: Mapping[Topic, Latest], stale: frozenset[Topic], now_s: float, config: FleetConfig
) -> FleetView:
    """The fleet view at wall-clock time `now_s` from the newest record per key of each topic."""
    return FleetView(
        health={} if Topic.HEALTH in stale else _health(latest.get(Topic.HEALTH, {}), now_s, config),
        quality={} if Topic.QUALITY in stale else _quality(latest.get(Topic.QUALITY, {}), config),
        costs={} if Topic.COSTS in stale else dict(latest.get(Topic.COSTS, {})),
        stale=stale,
        freshness={
            topic: fresh for topic, values in latest.items() if (fresh := topic_freshness(values)) is not None
        },
    )


def topic_freshness(latest: Latest) -> TopicFreshness | None:
    """The freshness the input partitions' latest checkpoints state (None: no checkpoint says it).

    Checkpoints, not dimension records: every flush and heartbeat writes one per partition, while a
    dimension's record is as old as its last change.
    """
    stated = []
    for record_key, value in latest.items():
        dimension_key, _ = parse_record_key(record_key)
        if dimension_key == CHECKPOINT_KEY and value is not None and "freshness" in value:
            stated.append(value["freshness"])
    if not stated:
        return None
    watermarks = [float(f["watermark_s"]) for f in stated if f.get("watermark_s")]
    return TopicFreshness(
        catching_up=any(f["phase"] != PHASE_LIVE for f in stated),
        lag_count=sum(int(f.get("lag_count", 0)) for f in stated),
        watermark_s=min(watermarks) if watermarks else None,
        partitions=len(stated),
    )


def _health(latest: Latest, now_s: float, config: FleetConfig) -> dict[str, DeploymentHealth]:
    current = {
        key: slid
        for key, value in latest.items()
        if (slid := _slide(value, now_s, config.health_window_s)) is not None
    }
    out: dict[str, DeploymentHealth] = {}
    for summary in fleet_health(current, now_s=now_s).values():
        dimension = summary["dimension"]
        errors: dict[str, int] = summary["errors"]
        judged = summary["successes"] + sum(n for name, n in errors.items() if name in PROVIDER_ERRORS)
        now = summary["current"]
        # A failure streak or an open breaker is evidence enough, however few the attempts: a
        # breaker opens after a handful of failures, and then no more attempts come.
        if judged < config.min_attempts and not now["failing"]:
            continue
        out[f"{dimension['provider']}/{dimension['model']}"] = DeploymentHealth(
            score=float(summary["health_score"]),
            judged=judged,
            attempts=int(summary["attempts"]),
            error_rate=float(summary["error_rate"]),
            latency_p95_s=_seconds(summary["latency_ms"]["p95"]),
            ttft_p95_s=_seconds(summary["ttft_ms"]["p95"]),
            failing=bool(now["failing"]),
            open_breakers=tuple(now["open_breakers"]),
        )
    return out


def _slide(value: JsonDict | None, now_s: float, max_window_s: float) -> JsonDict | None:
    """The value without the slots and failures before `now_s - window`; None if nothing is left
    (no slot, no breaker open at `now_s`).

    Checkpoint records have no window and pass through (fleet_health skips them)."""
    if value is None or "window" not in value:
        return value
    window = value["window"]
    oldest_end = now_s - min(float(window["seconds"]), max_window_s)
    slot_s = float(window["slot_seconds"])
    slots = [slot for slot in value["slots"] if parse_rfc3339(slot["start"]) + slot_s > oldest_end]
    recent = value.get("recent")
    if recent is not None:
        failures = [text for text in recent["failures"] if parse_rfc3339(text) > oldest_end]
        if len(failures) != len(recent["failures"]):
            recent = {**recent, "failures": failures}
    breaker_open = recent is not None and any(parse_rfc3339(b["until"]) > now_s for b in recent["breakers"])
    if not slots and not breaker_open:
        return None
    if len(slots) == len(value["slots"]) and recent is value.get("recent"):
        return value
    return {**value, "slots": slots, "recent": recent}


def _quality(latest: Latest, config: FleetConfig) -> dict[tuple[str, TaskType], QualityStats]:
    out: dict[tuple[str, TaskType], QualityStats] = {}
    for stats in fleet_quality(latest).values():
        dimension = stats["dimension"]
        # The scorer-capped weight (router_contract/quality_scores.py): 300 scores from one key count
        # as about one, so one key cannot make a model's feedback "enough" on its own.
        count = int(stats.get("effective_count", stats["count"]))
        task = _task(str(dimension["task_type"]))
        if task is None or count < config.min_feedback or stats["mean_score"] is None:
            continue
        out[(str(dimension["model"]), task)] = QualityStats(
            mean=float(stats["mean_score"]), count=count, confidence=float(stats["confidence"])
        )
    return out


def _task(name: str) -> TaskType | None:
    try:
        return TaskType(name)
    except ValueError:  # "unspecified", or a task type this router version does not know
        return None


def _seconds(ms: Any) -> float | None:
    return None if ms is None else float(ms) / 1000.0
