"""Quality: the request join, its bounds, score statistics, dropped feedback, the fleet merge."""

from __future__ import annotations

import math

import pytest

from consumers import events as ce
from consumers.quality.aggregate import QualityAggregator, QualityConfig
from consumers.quality.join import JoinConfig, RequestIndex
from router_contract.quality_scores import ScoreSums, statistics
from router_contract.readers.quality import fleet_quality
from router_contract.snapshot_keys import record_key
from tests.consumers.helpers import consumer_event

T0 = 1_795_046_400.0


class Stream:
    """Feeds events to an aggregator with increasing offsets."""

    def __init__(self, aggregator: QualityAggregator) -> None:
        self.aggregator = aggregator
        self.offset = 0

    def send(self, body: ce.Body, request_id: str, time_s: float = T0, **envelope: str) -> bool | str:
        self.offset += 1
        event = consumer_event(
            body, event_id=f"e{self.offset}", request_id=request_id, time_s=time_s, **envelope
        )
        return self.aggregator.apply(event, self.offset)

    def request(self, request_id: str, task: str = "code", model: str = "m1", time_s: float = T0) -> None:
        self.send(ce.Decision(task, f"p/{model}"), request_id, time_s)
        self.send(ce.Completion("p", model), request_id, time_s)


def _values(aggregator: QualityAggregator) -> dict[str, dict[str, object] | None]:
    return {record.key: record.value for record in aggregator.changes(T0)}


def test_feedback_counts_under_the_model_that_answered_and_the_task() -> None:
    stream = Stream(QualityAggregator())
    stream.request("r1", task="code", model="fallback-model")
    assert stream.send(ce.Feedback(0.8), "r1") is True
    assert stream.send(ce.Feedback(0.6), "r1") is True  # the same key again: replaces its score
    value = _values(stream.aggregator)["model=fallback-model,task=code"]
    assert value is not None
    assert value["dimension"] == {"model": "fallback-model", "task_type": "code"}
    assert value["count"] == 1 and value["mean_score"] == pytest.approx(0.6)


def test_feedback_without_a_scorer_key_counts_every_time_as_before_keys() -> None:
    stream = Stream(QualityAggregator())
    stream.request("r1", task="code", model="m1")
    assert stream.send(ce.Feedback(0.8), "r1", api_key_id="") is True
    assert stream.send(ce.Feedback(0.6), "r1", api_key_id="") is True  # auth off: both count
    value = _values(stream.aggregator)["model=m1,task=code"]
    assert value is not None and value["count"] == 2 and value["mean_score"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("setup", "score", "reason"),
    [
        ("nothing", 0.5, "unattributed"),  # unknown request
        ("decision_only", 0.5, "unattributed"),  # the request failed: no model answered
        ("completion_only", 0.5, "unattributed"),  # no decision seen: no task
        ("both", math.nan, "invalid_score"),
        ("both", 1.5, "invalid_score"),
        ("both", -0.1, "invalid_score"),
    ],
)
def test_feedback_that_cannot_be_attributed_or_is_invalid_is_dropped(
    setup: str, score: float, reason: str
) -> None:
    stream = Stream(QualityAggregator())
    if setup in ("decision_only", "both"):
        stream.send(ce.Decision("chat"), "r1")
    if setup in ("completion_only", "both"):
        stream.send(ce.Completion("p", "m"), "r1")
    assert stream.send(ce.Feedback(score), "r1") == reason
    assert _values(stream.aggregator) == {}


def test_the_join_index_evicts_by_count_and_by_age() -> None:
    index = RequestIndex(JoinConfig(horizon_s=100, max_requests=2))
    for i, request_id in enumerate(("a", "b", "c")):
        index.note_task(request_id, "chat", i, T0)
        index.note_model(request_id, "m", i, T0)
        index.evict(T0)
    assert index.lookup("a") is None and index.lookup("c") == ("chat", "m")
    assert index.start_offset() == 1
    index.evict(T0 + 101)
    assert len(index) == 0 and index.start_offset() is None


def test_feedback_older_than_the_window_is_dropped_and_old_days_expire() -> None:
    stream = Stream(QualityAggregator(QualityConfig(window_days=2)))
    stream.request("r1")
    stream.send(ce.Feedback(1.0), "r1")
    assert _values(stream.aggregator)["model=m1,task=code"] is not None
    stream.request("r2", time_s=T0 + 2 * 86_400)
    values = _values(stream.aggregator)
    assert values["model=m1,task=code"] is None  # its only day left the window: a tombstone
    assert stream.send(ce.Feedback(1.0), "r2", time_s=T0) == "late"  # a score dated before the window


# scores -> (mean, stddev, ci95 half width, confidence)
STATS_TABLE = [
    ([], (None, None, None, 0.0)),
    ([0.5], (0.5, None, None, 1 / 11)),
    ([1.0, 0.0], (0.5, math.sqrt(0.5), 1.96 * math.sqrt(0.5) / math.sqrt(2), 2 / 12)),
    ([0.9] * 10, (0.9, 0.0, 0.0, 0.5)),
]


@pytest.mark.parametrize(("scores", "expected"), STATS_TABLE)
def test_score_statistics(scores: list[float], expected: tuple[float | None, ...]) -> None:
    sums = ScoreSums()
    for score in scores:
        sums.add(score)
    stats = statistics(sums)
    got = (stats["mean_score"], stats["stddev"], stats["ci95_half_width"], stats["confidence"])
    for value, want in zip(got, expected, strict=True):
        assert value == (None if want is None else pytest.approx(want, abs=1e-6))
    assert stats["count"] == len(scores)


def test_the_fleet_view_sums_partitions() -> None:
    latest: dict[str, object] = {}
    for partition, scores in ((0, [1.0, 0.5]), (1, [0.0])):
        stream = Stream(QualityAggregator())
        for i, score in enumerate(scores):
            stream.request(f"r{i}")
            stream.send(ce.Feedback(score), f"r{i}")
        for record in stream.aggregator.changes(T0):
            latest[record_key(record.key, partition)] = record.value
    view = fleet_quality(latest)["model=m1,task=code"]  # type: ignore[arg-type]
    assert view["count"] == 3 and view["mean_score"] == pytest.approx(0.5)
