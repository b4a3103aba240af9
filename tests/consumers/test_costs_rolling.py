"""The costs rollups' rolling-budget buckets: the cost per epoch-aligned bucket of the limited
dimensions only (the total, keys, teams, customers), exact, bounded to the rolling window at the
watermark however long the stream runs, and carried through a restore."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from router_contract.readers.costs import fleet_buckets, keeps_rolling
from router_contract.snapshot_keys import record_key
from router_contract.windows import RollingGrain
from tests.consumers.helpers import consumer_event

T0 = 1_795_046_400.0  # a multiple of every bucket length used here
HOUR = 3600.0


def _completion(at: float, nanos: int, offset: int, *, team: str = "search") -> tuple[ce.Event, int]:
    body = ce.Completion("sim", "gpt-4o", 10, 5, cost_nanos_usd=nanos)
    return consumer_event(body, time_s=at, event_id=f"e{offset}", team=team), offset


def test_only_the_limited_dimensions_keep_buckets_and_each_lists_every_period() -> None:
    aggregator = CostsAggregator()
    aggregator.apply(*_completion(T0 + 10, 700, 0))
    values = aggregator_values(aggregator)
    with_buckets = sorted(key for key, value in values.items() if "rolling" in value)
    assert with_buckets == ["api_key=key-1", "customer=acme", "team=search", "total=all"]
    assert sorted(values["team=search"]["rolling"]) == ["day", "hour", "month", "week"]
    assert values["team=search"]["rolling"]["day"] == {
        "bucket_ms": 3_600_000,
        "buckets": [{"bucket": int(T0 // HOUR), "cost_nanos_usd": "700"}],
    }


def aggregator_values(aggregator: CostsAggregator) -> dict[str, dict]:
    return {r.key: r.value for r in aggregator.changes(T0) if r.value is not None}


def test_buckets_sum_exactly_and_fleet_buckets_adds_partitions() -> None:
    partitions = [CostsAggregator(), CostsAggregator()]
    spends = [(T0 + 60, 100), (T0 + 3599, 200), (T0 + HOUR, 400), (T0 + HOUR + 5, 800)]
    for i, (at, nanos) in enumerate(spends):
        partitions[i % 2].apply(*_completion(at, nanos, i))
    latest = {}
    for partition, aggregator in enumerate(partitions):
        latest |= {record_key(r.key, partition): r.value for r in aggregator.changes(T0 + HOUR + 5)}
    hour0 = int(T0 // HOUR)
    assert fleet_buckets(latest, "day")["team=search"] == {hour0: 300, hour0 + 1: 1200}
    assert sum(fleet_buckets(latest, "hour")["total=all"].values()) == 1500
    assert "model=gpt-4o" not in fleet_buckets(latest, "day")
    assert keeps_rolling(latest, "day", 3_600_000)
    assert not keeps_rolling(latest, "day", 60_000)  # another bucketing is not these buckets


@pytest.mark.parametrize(
    ("period", "bucket_s"), [("hour", 150), ("day", 3600), ("week", 25_200), ("month", 108_000)]
)
def test_a_long_stream_keeps_at_most_the_rolling_window_of_buckets(period: str, bucket_s: int) -> None:
    """Memory stays bounded: one event per bucket for 60 windows' worth leaves only the buckets of
    the rolling window at the watermark (25), and a late event older than them is not added."""
    aggregator = CostsAggregator(CostsConfig(granularities=("hour",), rolling_periods=(period,)))
    grain = RollingGrain(period)
    count = 60 * 24
    for i in range(count):
        aggregator.apply(*_completion(T0 + i * bucket_s, 1, i))
    last = T0 + (count - 1) * bucket_s
    aggregator.apply(*_completion(last - 25 * bucket_s, 1_000_000, count))  # late: outside the window
    [total] = [r.value for r in aggregator.changes(last) if r.key == "total=all"]
    assert total is not None
    buckets = total["rolling"][period]["buckets"]
    assert [b["bucket"] for b in buckets] == list(range(grain.oldest(last), grain.bucket(last) + 1))
    assert len(buckets) == 25 and {b["cost_nanos_usd"] for b in buckets} == {"1"}


def test_a_restored_aggregator_publishes_the_same_buckets() -> None:
    original = CostsAggregator()
    for i in range(5):
        original.apply(*_completion(T0 + i * 1000, 10 + i, i))
    published = {r.key: r.value for r in original.changes(T0 + 4000)}
    restored = CostsAggregator()
    for key, value in published.items():
        assert value is not None
        restored.restore(key, value, 5)
    restored.restore_meta(original.meta())
    restored.mark_dirty(published)
    again = {r.key: r.value for r in restored.changes(T0 + 4000)}
    assert again == published


def test_a_value_written_before_rolling_buckets_restores_with_none() -> None:
    original = CostsAggregator()
    original.apply(*_completion(T0, 10, 0))
    [(key, value)] = [(r.key, r.value) for r in original.changes(T0) if r.key == "team=search"]
    assert value is not None
    old = {k: v for k, v in value.items() if k != "rolling"}
    restored = CostsAggregator()
    restored.restore(key, old, 1)
    restored.mark_dirty([key])
    [again] = [r.value for r in restored.changes(T0)]
    assert again is not None
    assert all(kept["buckets"] == [] for kept in again["rolling"].values())


@settings(max_examples=200, deadline=None)
@given(offsets=st.lists(st.floats(min_value=0, max_value=3 * HOUR, allow_nan=False), min_size=1, max_size=60))
def test_every_kept_bucket_sums_its_events_exactly_in_any_arrival_order(offsets: list[float]) -> None:
    """Events arrive out of order; one counts in a rolling-hour bucket when that bucket was still
    in the window at the watermark (the newest event time so far) when it arrived."""
    aggregator = CostsAggregator(CostsConfig(rolling_periods=("hour",)))
    grain = RollingGrain("hour")
    expected: dict[int, int] = {}
    watermark = 0.0
    for i, offset in enumerate(offsets):
        at = T0 + offset
        watermark = max(watermark, at)
        if grain.bucket(at) >= grain.oldest(watermark):
            expected[grain.bucket(at)] = expected.get(grain.bucket(at), 0) + i + 1
        aggregator.apply(*_completion(at, i + 1, i))
    [total] = [r.value for r in aggregator.changes(watermark) if r.key == "total=all"]
    assert total is not None
    kept = {b["bucket"]: int(b["cost_nanos_usd"]) for b in total["rolling"]["hour"]["buckets"]}
    assert kept == {b: n for b, n in expected.items() if b >= grain.oldest(watermark)}
