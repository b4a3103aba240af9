"""Cost rollups: dimensions, windows, lateness, bounds, snapshot JSON and the fleet merge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from consumers.costs.dimensions import dimensions_of
from consumers.jobs import JOBS, JobOptions
from router_contract.cost_totals import Totals, usd_text
from router_contract.readers.costs import fleet_totals
from router_contract.snapshot_keys import record_key
from router_contract.windows import ROLLUP_GRAINS, Grain, window_start
from tests.consumers.helpers import consumer_event

DAY0 = 1_795_046_400  # 2026-11-19T00:00:00Z, a UTC midnight


def _completion(cost: int = 100, tokens: tuple[int, int, int] = (10, 5, 2), **kw: object) -> ce.Completion:
    fields: dict[str, object] = {"provider": "openai", "model": "gpt-4o"}
    fields.update(kw)
    return ce.Completion(
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cached_input_tokens=tokens[2],
        cost_nanos_usd=cost,
        **fields,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("team", "tags", "tag_keys", "expected_extra"),
    [
        ("search", {}, {"feature"}, []),
        ("", {"feature": "sum"}, {"feature"}, ["tag:feature=sum"]),
        ("a=b", {"k#1": "v,2/3"}, {"k#1"}, ["tag:k%231=v%2C2%2F3"]),
        # Only configured tag keys are dimensions; by default none is.
        (
            "",
            {"feature": "sum", "note": "Bearer tok-abc", "user": "u-81723"},
            {"feature", "env"},
            ["tag:feature=sum"],
        ),
        ("", {"feature": "sum", "note": "Bearer tok-abc"}, set(), []),
    ],
)
def test_a_completion_counts_in_every_dimension(
    team: str, tags: dict[str, str], tag_keys: set[str], expected_extra: list[str]
) -> None:
    event = consumer_event(_completion(), team=team, tags=tags)
    keys = [d.key for d in dimensions_of(event.envelope, event.body, frozenset(tag_keys))]  # type: ignore[arg-type]
    team_key = "team=" + team.replace("=", "%3D")
    base = ["total=all", "api_key=key-1", team_key, "customer=acme", "model=gpt-4o", "provider=openai"]
    # The per-model breakdowns of the caller's key, team and customer.
    base += ["api_key=key-1,model=gpt-4o", f"{team_key},model=gpt-4o", "customer=acme,model=gpt-4o"]
    assert keys == [*base, *expected_extra]


# (event time offsets from DAY0, granularity, window start offset, expected requests, expected cost)
WINDOW_TABLE = [
    ([0, 30, 59], "minute", 0, 3, 300),
    ([0, 30, 60], "minute", 0, 2, 200),
    ([0, 30, 60], "minute", 60, 1, 100),
    ([0, 3599, 3600], "hour", 0, 2, 200),
    ([0, 86_399, 86_400], "day", 0, 2, 200),
    ([0, 86_399, 86_400], "day", 86_400, 1, 100),
]


@pytest.mark.parametrize(("times", "granularity", "start", "requests", "cost"), WINDOW_TABLE)
def test_completions_fall_into_utc_windows(
    times: list[int], granularity: str, start: int, requests: int, cost: int
) -> None:
    aggregator = CostsAggregator()
    for offset, t in enumerate(times):
        assert aggregator.apply(consumer_event(_completion(), event_id=f"e{offset}", time_s=DAY0 + t), offset)
    totals = aggregator.totals("total=all", granularity, DAY0 + start)
    assert totals is not None
    assert (totals.requests, totals.cost_nanos_usd) == (requests, cost)


def test_sums_are_exact_integers_far_beyond_float_precision() -> None:
    aggregator = CostsAggregator()
    big = 9_007_199_254_740_993  # 2**53 + 1: a float would round it
    for i in range(3):
        aggregator.apply(
            consumer_event(_completion(cost=big, tokens=(big, 1, 0)), event_id=f"e{i}", time_s=DAY0), i
        )
    totals = aggregator.totals("provider=openai", "day", DAY0)
    assert totals == Totals(
        requests=3, cost_nanos_usd=3 * big, input_tokens=3 * big, output_tokens=3, cached_input_tokens=0
    )


# (watermark offset, late event offset, counted?, which granularities still hold it)
LATENESS_TABLE = [
    (120, 61, True, {"minute", "hour", "day", "week", "month"}),  # previous minute: still kept
    (180, 30, True, {"hour", "day", "week", "month"}),  # two minutes back: out of the minute rollup only
    (7200 + 30, 30, True, {"day", "week", "month"}),  # two hours back
    (2 * 86_400 + 30, 30, True, {"week", "month"}),  # two days back (DAY0 is a Thursday)
    (12 * 86_400 + 30, 30, True, {"month"}),  # Tuesday two weeks on, the 1st of December
    (43 * 86_400 + 30, 30, False, set()),  # 1 January: two months on, late for everything
]


@pytest.mark.parametrize(("watermark", "late", "counted", "granularities"), LATENESS_TABLE)
def test_late_events_are_kept_only_in_windows_still_retained(
    watermark: int, late: int, counted: bool, granularities: set[str]
) -> None:
    aggregator = CostsAggregator()
    aggregator.apply(consumer_event(_completion(), event_id="new", time_s=DAY0 + watermark), 0)
    assert (
        aggregator.apply(consumer_event(_completion(cost=7), event_id="late", time_s=DAY0 + late), 1)
        is counted
    )
    holding = {
        name
        for name in ROLLUP_GRAINS
        if (t := aggregator.totals("total=all", name, Grain(name).start(DAY0 + late))) is not None
        and t.cost_nanos_usd % 100 == 7
    }
    assert holding == granularities


def test_dimensions_past_the_cap_are_counted_under_other() -> None:
    aggregator = CostsAggregator(CostsConfig(max_dimensions=11))
    aggregator.apply(consumer_event(_completion(), event_id="a", team="t1", time_s=DAY0), 0)  # 9 dims
    # t2 and its per-model breakdown: the 10th and 11th.
    aggregator.apply(consumer_event(_completion(), event_id="b", team="t2", time_s=DAY0), 1)
    aggregator.apply(consumer_event(_completion(), event_id="c", team="t3", time_s=DAY0), 2)  # over
    aggregator.apply(consumer_event(_completion(), event_id="d", team="t4", time_s=DAY0), 3)  # over
    other = aggregator.totals("team=_OTHER", "day", DAY0)
    assert other is not None and other.requests == 2
    assert aggregator.totals("team=t3", "day", DAY0) is None
    breakdown = aggregator.totals("team=_OTHER,model=_OTHER", "day", DAY0)
    assert breakdown is not None and breakdown.requests == 2
    total = aggregator.totals("total=all", "day", DAY0)
    assert total is not None and total.requests == 4


def test_changes_publish_dirty_dimensions_then_tombstones_for_expired_ones() -> None:
    aggregator = CostsAggregator()
    aggregator.apply(consumer_event(_completion(), event_id="a", team="old", time_s=DAY0), 0)
    first = {record.key for record in aggregator.changes(DAY0)}
    assert "team=old" in first
    assert aggregator.changes(DAY0) == []  # nothing new
    aggregator.apply(consumer_event(_completion(), event_id="b", team="new", time_s=DAY0 + 3 * 86_400), 1)
    changes = {record.key: record.value for record in aggregator.changes(DAY0)}
    old = changes["team=old"]  # its days expired, its week and month are kept
    assert old is not None
    assert {name: len(windows) for name, windows in old["windows"].items()} == {
        "minute": 0,
        "hour": 0,
        "day": 0,
        "week": 1,
        "month": 1,
    }
    assert changes["team=new"] is not None
    aggregator.apply(consumer_event(_completion(), event_id="c", team="new", time_s=DAY0 + 70 * 86_400), 2)
    changes = {record.key: record.value for record in aggregator.changes(DAY0)}
    assert changes["team=old"] is None  # every window of it expired: a tombstone


def test_snapshot_value_shape_and_round_trip() -> None:
    aggregator = CostsAggregator()
    aggregator.apply(consumer_event(_completion(cost=1_500_000_000), time_s=DAY0 + 61), 0)
    value = {r.key: r.value for r in aggregator.changes(DAY0)}["model=gpt-4o"]
    assert value is not None
    assert value["kind"] == "cost_rollup"
    assert value["dimension"] == {"name": "model", "value": "gpt-4o"}
    minute = value["windows"]["minute"][0]
    assert minute == {
        "start": "2026-11-19T00:01:00.000Z",
        "end": "2026-11-19T00:02:00.000Z",
        "requests": 1,
        "cache_hits": 0,
        "cost_nanos_usd": "1500000000",
        "cost_saved_nanos_usd": "0",
        "input_tokens": "10",
        "output_tokens": "5",
        "cached_input_tokens": "2",
        "unused_answers": 0,
        "unused_cost_nanos_usd": "0",
        "served_input_tokens": "0",
        "served_output_tokens": "0",
        "cost_usd": "1.500000000",
    }
    restored = CostsAggregator()
    restored.restore("model=gpt-4o", value, covered_offset=1)
    assert restored.totals("model=gpt-4o", "hour", DAY0) == aggregator.totals("model=gpt-4o", "hour", DAY0)


def test_a_cache_hit_counts_its_tokens_as_served_and_never_as_billed() -> None:
    aggregator = CostsAggregator()
    aggregator.apply(consumer_event(_completion(cost=700, tokens=(10, 5, 2)), event_id="a"), 0)
    hit = _completion(cost=0, tokens=(10, 5, 2), cache_hit=True, cost_saved_nanos_usd=700)
    aggregator.apply(consumer_event(hit, event_id="b"), 1)
    start = window_start(1_795_000_000.0, 3600)
    totals = aggregator.totals("model=gpt-4o", "hour", start)
    assert totals == Totals(
        requests=2,
        cache_hits=1,
        cost_nanos_usd=700,
        cost_saved_nanos_usd=700,
        input_tokens=10,  # billed: the miss's only
        output_tokens=5,
        cached_input_tokens=2,
        served_input_tokens=10,  # the hit's, served from the cache
        served_output_tokens=5,
    )


def test_a_snapshot_written_before_unused_answers_were_counted_restores_them_as_zero() -> None:
    old = {"requests": 3, "cache_hits": 0, "cost_nanos_usd": "300", "cost_saved_nanos_usd": "0"}
    old |= {"input_tokens": "30", "output_tokens": "15", "cached_input_tokens": "0"}
    assert Totals.from_json(old) == Totals(requests=3, cost_nanos_usd=300, input_tokens=30, output_tokens=15)


def _unused(cost: int, tokens: tuple[int, int, int] = (10, 5, 0), **kw: object) -> ce.Attempt:
    return ce.Attempt(
        provider="openai",
        model="gpt-4o",
        outcome="success",
        unused_input_tokens=tokens[0],
        unused_output_tokens=tokens[1],
        unused_cached_input_tokens=tokens[2],
        unused_cost_nanos_usd=cost,
        **kw,  # type: ignore[arg-type]
    )


def test_an_unused_hedge_answer_is_billed_in_its_dimensions_but_is_no_request() -> None:
    aggregator = CostsAggregator()
    aggregator.apply(consumer_event(_completion(cost=100), event_id="c", time_s=DAY0), 0)
    aggregator.apply(consumer_event(_unused(cost=70), event_id="u", time_s=DAY0 + 1), 1)
    # An ordinary attempt (its cost is in its completion) and a loser that never answered.
    aggregator.apply(consumer_event(ce.Attempt("openai", "gpt-4o", "success"), event_id="a", time_s=DAY0), 2)
    aggregator.apply(
        consumer_event(ce.Attempt("openai", "gpt-4o", "error", "timeout"), event_id="t", time_s=DAY0), 3
    )
    for key in ("total=all", "model=gpt-4o", "team=search", "api_key=key-1"):
        totals = aggregator.totals(key, "day", DAY0)
        assert totals == Totals(
            requests=1,
            cost_nanos_usd=170,
            input_tokens=20,
            output_tokens=10,
            cached_input_tokens=2,
            unused_answers=1,
            unused_cost_nanos_usd=70,
        ), key


def test_fleet_totals_sum_the_partitions_of_a_dimension() -> None:
    latest: dict[str, object] = {}
    for partition, cost in ((0, 5), (1, 7)):
        aggregator = CostsAggregator()
        aggregator.apply(consumer_event(_completion(cost=cost), time_s=DAY0), 0)
        for record in aggregator.changes(DAY0):
            latest[record_key(record.key, partition)] = record.value
    latest[record_key("_checkpoint", 0)] = {"kind": "checkpoint"}
    latest[record_key("team=gone", 1)] = None
    merged = fleet_totals(latest, "day", DAY0)  # type: ignore[arg-type]
    assert merged["total=all"].cost_nanos_usd == 12
    assert merged["total=all"].requests == 2
    assert "team=gone" not in merged


@pytest.mark.parametrize(
    ("nanos", "text"), [(0, "0.000000000"), (1, "0.000000001"), (1_234_567_890_123, "1234.567890123")]
)
def test_usd_text_is_exact(nanos: int, text: str) -> None:
    assert usd_text(nanos) == text


def test_only_configured_tag_keys_become_snapshot_keys() -> None:
    tags = {"feature": "chat", "note": "Bearer tok-abcdefgh12345678", "user": "jane@example.com"}
    default = CostsAggregator()
    configured = CostsAggregator(CostsConfig(tag_dimensions=frozenset({"feature", "env"})))
    for aggregator in (default, configured):
        aggregator.apply(consumer_event(_completion(), tags=tags, time_s=DAY0), 0)

    default_keys = [record.key for record in default.changes(DAY0)]
    configured_keys = [record.key for record in configured.changes(DAY0)]

    assert not [key for key in default_keys if key.startswith("tag:")]
    assert [key for key in configured_keys if key.startswith("tag:")] == ["tag:feature=chat"]
    assert "Bearer" not in " ".join(configured_keys) and "jane" not in " ".join(configured_keys)


def test_a_restored_tag_dimension_no_longer_configured_is_tombstoned() -> None:
    old = CostsAggregator(CostsConfig(tag_dimensions=frozenset({"feature", "note"})))
    old.apply(consumer_event(_completion(), tags={"feature": "chat", "note": "tok-1"}, time_s=DAY0), 0)
    snapshot = {record.key: record.value for record in old.changes(DAY0)}
    assert "tag:note=tok-1" in snapshot

    new = CostsAggregator(CostsConfig(tag_dimensions=frozenset({"feature"})))
    for key, value in snapshot.items():
        assert value is not None
        new.restore(key, value, covered_offset=1)

    changes = {record.key: record.value for record in new.changes(DAY0)}
    assert changes == {"tag:note=tok-1": None}  # a tombstone: compaction removes the key
    assert new.totals("tag:feature=chat", "day", DAY0) == old.totals("tag:feature=chat", "day", DAY0)
    assert new.totals("tag:note=tok-1", "day", DAY0) is None


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 9 * 86_400), st.integers(1, 10**12), st.booleans()), min_size=1, max_size=40
    )
)
def test_every_kept_window_sums_its_events_exactly_whenever_it_is_read(
    steps: list[tuple[int, int, bool]],
) -> None:
    """In-order events (none late) over nine days, snapshots taken at random moments in between:
    each window still kept holds exactly the sum of its events' costs (the pending sums are
    settled before every read)."""
    aggregator = CostsAggregator()
    t = DAY0 - 3 * 86_400  # a Monday, so weeks and a month end both occur
    times: list[tuple[int, int]] = []
    for i, (step, cost, read) in enumerate(sorted(steps)):
        times.append((t + step, cost))
        assert aggregator.apply(consumer_event(_completion(cost=cost), event_id=f"e{i}", time_s=t + step), i)
        if read:
            aggregator.changes(t + step)
    for name in ROLLUP_GRAINS:
        grain = Grain(name)
        for start in {grain.start(u) for u, _ in times}:
            totals = aggregator.totals("team=search,model=gpt-4o", name, start)
            if totals is None:
                continue  # expired
            assert totals.cost_nanos_usd == sum(c for u, c in times if grain.start(u) == start)
    last = Grain("month").start(times[-1][0])
    assert aggregator.totals("total=all", "month", last) is not None


def test_cost_time_zones_add_that_zones_calendar_windows() -> None:
    options = JobOptions.from_env({"COST_TIME_ZONES": " Europe/Berlin, UTC,"})
    assert options.cost_time_zones == ("Europe/Berlin",)  # UTC's windows are always kept
    aggregator = JOBS["costs"].configured(options).new_aggregator()
    # 23:30 UTC on 30 November is 00:30 on 1 December in Berlin.
    at = DAY0 + 11 * 86_400 + 23 * 3600 + 1800
    assert aggregator.apply(consumer_event(_completion(cost=9), time_s=at), 0)
    [record] = [r for r in aggregator.changes(at) if r.key == "total=all"]
    assert record.value is not None
    windows = record.value["windows"]
    assert [w["start"] for w in windows["month"]] == ["2026-11-01T00:00:00.000Z"]
    assert [w["start"] for w in windows["month@Europe/Berlin"]] == ["2026-11-30T23:00:00.000Z"]
    assert [w["start"] for w in windows["week@Europe/Berlin"]] == ["2026-11-29T23:00:00.000Z"]
