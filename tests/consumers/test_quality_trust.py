"""Trusted feedback in the quality consumer (issue 13): who may score a request, one score per
(request, scorer) with the last one winning, and the cap on one scorer's share of the weight.
Pure aggregator and statistics tests; hypothesis properties with fixed budgets."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.dedupe import DedupeConfig
from consumers.partition import BatchStats, InputRecord, PartitionProcessor
from consumers.quality.aggregate import QualityAggregator, QualityConfig
from consumers.quality.join import JoinConfig
from router_contract.quality_scores import ANONYMOUS, ScoreSums, capped_statistics, scorer_weights, statistics
from router_contract.readers.quality import fleet_quality
from router_contract.snapshot_keys import record_key
from tests.consumers.helpers import consumer_event
from tests.consumers.test_partition import _interrupted, _state, _uninterrupted

T0 = 1_795_046_400.0
KEY = "model=m1,task=code"
OWNER = {"api_key_id": "k_owner", "team": "search", "customer": "acme"}


class Stream:
    def __init__(self, aggregator: QualityAggregator | None = None) -> None:
        self.aggregator = aggregator or QualityAggregator()
        self.offset = 0

    def send(self, body: ce.Body, request_id: str, time_s: float = T0, **envelope: str) -> bool | str:
        self.offset += 1
        event = consumer_event(
            body, event_id=f"e{self.offset}", request_id=request_id, time_s=time_s, **envelope
        )
        return self.aggregator.apply(event, self.offset)

    def request(self, request_id: str, time_s: float = T0, **owner: str) -> None:
        envelope = owner or OWNER
        self.send(ce.Decision("code", "p/m1"), request_id, time_s, **envelope)
        self.send(ce.Completion("p", "m1"), request_id, time_s, **envelope)

    def score(self, request_id: str, score: float, key: str, time_s: float = T0, **scorer: str) -> bool | str:
        evaluator = scorer.pop("evaluator", "") == "yes"
        envelope = {"team": "search", "customer": "acme", **scorer, "api_key_id": key}
        return self.send(ce.Feedback(score, evaluator), request_id, time_s, **envelope)

    def value(self) -> dict[str, object] | None:
        return {r.key: r.value for r in self.aggregator.changes(T0)}.get(KEY)


# --- who may score -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scorer", "outcome"),
    [
        ({"key": "k_owner"}, True),  # the key that made it
        ({"key": "k_mate", "team": "search"}, True),  # same team and customer
        ({"key": "k_other", "team": "ads"}, "not_allowed"),  # another team
        ({"key": "k_mate", "team": "search", "customer": "globex"}, "not_allowed"),  # another customer
        ({"key": "k_eval", "team": "qa", "evaluator": "yes"}, True),  # an evaluator of the customer
        ({"key": "k_eval", "team": "qa", "customer": "globex", "evaluator": "yes"}, "not_allowed"),
        ({"key": "k_teamless", "team": ""}, "not_allowed"),  # no team is nobody's team
    ],
)
def test_only_those_who_may_score_a_request_are_counted(scorer: dict[str, str], outcome: bool | str) -> None:
    stream = Stream()
    stream.request("r1")
    key = scorer.pop("key")
    assert stream.score("r1", 0.25, key, **scorer) == outcome
    value = stream.value()
    if outcome is True:
        assert value is not None and value["count"] == 1
    else:
        assert value is None  # nothing changed


def test_a_request_made_without_a_key_may_be_scored_by_anyone() -> None:
    stream = Stream()
    stream.request("r1", api_key_id="", team="", customer="")
    assert stream.score("r1", 0.5, "k_any", team="ads", customer="globex") is True


def test_dropped_feedback_is_counted_by_reason_in_the_batch() -> None:
    processor = PartitionProcessor("events", 0, QualityAggregator(), DedupeConfig())
    events = [
        consumer_event(ce.Decision("code"), event_id="d", request_id="r1", **OWNER),
        consumer_event(ce.Completion("p", "m1"), event_id="c", request_id="r1", **OWNER),
        consumer_event(ce.Feedback(0.1), event_id="f1", request_id="r1", api_key_id="k_x", team="ads"),
        consumer_event(ce.Feedback(0.1), event_id="f2", request_id="nope", **OWNER),
        consumer_event(ce.Feedback(0.9), event_id="f3", request_id="r1", **OWNER),
    ]
    stats = BatchStats()
    processor.process([InputRecord(i, 0, e.envelope.event_id, e) for i, e in enumerate(events)], stats)
    assert stats.dropped == {"not_allowed": 1, "unattributed": 1}
    assert stats.counted == 3 and stats.late == 2


# --- one score per (request, scorer) -----------------------------------------------------------------


def test_a_repeated_score_replaces_the_earlier_one_never_adds() -> None:
    stream = Stream()
    stream.request("r1")
    stream.request("r2")
    stream.score("r2", 1.0, "k_owner")
    for _ in range(300):
        assert stream.score("r1", 0.0, "k_owner") is True
    value = stream.value()
    assert value is not None and value["count"] == 2 and value["mean_score"] == pytest.approx(0.5)


def test_an_older_score_than_the_one_in_force_is_dropped() -> None:
    stream = Stream()
    stream.request("r1")
    assert stream.score("r1", 0.9, "k_owner", time_s=T0 + 10) is True
    assert stream.score("r1", 0.1, "k_owner", time_s=T0 + 5) == "superseded"
    value = stream.value()
    assert value is not None and value["mean_score"] == pytest.approx(0.9)


def test_a_replaced_score_leaves_its_day_and_the_new_one_counts_in_its_own() -> None:
    stream = Stream()
    stream.request("r1")
    stream.score("r1", 0.2, "k_owner", time_s=T0)
    stream.score("r1", 0.8, "k_owner", time_s=T0 + 86_400)
    value = stream.value()
    assert value is not None
    days = value["days"]
    assert isinstance(days, list) and len(days) == 1 and days[0]["count"] == 1
    assert value["mean_score"] == pytest.approx(0.8)


def test_the_scorers_of_one_request_are_bounded() -> None:
    stream = Stream(QualityAggregator(QualityConfig(join=JoinConfig(max_scorers_per_request=2))))
    stream.request("r1")
    assert stream.score("r1", 0.5, "k_owner") is True
    assert stream.score("r1", 0.5, "k_mate") is True
    assert stream.score("r1", 0.5, "k_third") == "too_many_scorers"
    assert stream.score("r1", 0.7, "k_mate") is True  # a scorer in force may still replace


_TIMES = st.lists(st.integers(0, 50), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    times=_TIMES, scores=st.lists(st.integers(0, 100), min_size=12, max_size=12), seed=st.integers(0, 2**16)
)
def test_repeated_scores_any_order_equal_the_last_one_alone(
    times: list[int], scores: list[int], seed: int
) -> None:
    """Last wins by (event time, offset): arrival order matters only among equal times."""
    sent = [(T0 + t, scores[i] / 100) for i, t in enumerate(times)]
    random.Random(seed).shuffle(sent)
    stream = Stream()
    stream.request("r1")
    stream.request("r2")
    stream.score("r2", 0.5, "k_mate")  # another scorer, untouched
    for time_s, score in sent:
        stream.score("r1", score, "k_owner", time_s=time_s)
    latest = max(range(len(sent)), key=lambda i: (sent[i][0], i))  # later arrival = higher offset
    alone = Stream()
    alone.request("r1")
    alone.request("r2")
    alone.score("r2", 0.5, "k_mate")
    alone.score("r1", sent[latest][1], "k_owner", time_s=sent[latest][0])
    assert stream.value() == alone.value()


@settings(max_examples=100, deadline=None)
@given(score=st.integers(0, 100), repeats=st.integers(1, 20))
def test_sending_the_same_score_again_is_idempotent(score: int, repeats: int) -> None:
    once, many = Stream(), Stream()
    for stream, times in ((once, 1), (many, repeats)):
        stream.request("r1")
        for i in range(times):
            stream.score("r1", score / 100, "k_owner", time_s=T0 + i)
    assert many.value() == once.value()


def _trust_records(seed: int, requests: int = 120) -> list[InputRecord]:
    """Requests by a few keys, scored (often repeatedly, sometimes out of order or by keys that
    may not) by a few scorers: the state must not depend on crashes and restores."""
    rng = random.Random(seed)
    owners = [("k_a", "search"), ("k_b", "search"), ("k_c", "ads")]
    events: list[ce.Event] = []
    for i in range(requests):
        key, team = rng.choice(owners)
        owner = {"api_key_id": key, "team": team, "customer": "acme"}
        time_s = T0 + i * 10
        model = rng.choice(("m1", "m2"))
        events.append(
            consumer_event(ce.Decision("code"), event_id=f"d{i}", time_s=time_s, request_id=f"r{i}", **owner)
        )
        events.append(
            consumer_event(
                ce.Completion("p", model), event_id=f"c{i}", time_s=time_s, request_id=f"r{i}", **owner
            )
        )
        for j in range(rng.randint(0, 4)):
            scorer, scorer_team = rng.choice([*owners, ("k_eval", "qa")])
            target = f"r{rng.randint(max(0, i - 5), i)}"
            feedback = ce.Feedback(round(rng.random(), 2), evaluator=scorer == "k_eval")
            events.append(
                consumer_event(
                    feedback,
                    event_id=f"f{i}.{j}",
                    time_s=time_s + rng.randint(-3, 3),
                    request_id=target,
                    api_key_id=scorer,
                    team=scorer_team,
                    customer="acme",
                )
            )
    return [
        InputRecord(offset, int(e.envelope.event_time_s * 1000), e.envelope.event_id, e)
        for offset, e in enumerate(events)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_scores_in_force_survive_crashes_and_restores_exactly(seed: int) -> None:
    records = _trust_records(seed)
    expected = _state(_uninterrupted(records, QualityAggregator))
    assert expected
    assert _state(_interrupted(records, QualityAggregator, random.Random(seed))) == expected


# --- the cap on one scorer ------------------------------------------------------------------------


def _sums(scores: Sequence[float]) -> ScoreSums:
    sums = ScoreSums()
    for score in scores:
        sums.add(score)
    return sums


def test_one_spamming_key_moves_the_mean_by_at_most_the_share() -> None:
    organic = {f"k{i}": _sums([0.9]) for i in range(24)}
    before = capped_statistics(organic, 0.05)
    after = capped_statistics({**organic, "k_spam": _sums([0.0] * 300)}, 0.05)
    assert before["mean_score"] == pytest.approx(0.9)
    assert before["mean_score"] - after["mean_score"] <= 0.05
    assert after["count"] == 324 and after["effective_count"] < 26


def test_a_lone_scorer_counts_as_one_vote() -> None:
    stats = capped_statistics({"k_spam": _sums([0.0] * 300)}, 0.05)
    assert stats["effective_count"] == 1.0 and stats["confidence"] == pytest.approx(1 / 11)


def test_without_a_binding_cap_the_statistics_are_the_plain_ones() -> None:
    scorers = {ANONYMOUS: _sums([0.2, 0.4]), "k1": _sums([1.0])}
    assert capped_statistics(scorers, 1.0) == {**statistics(_sums([0.2, 0.4, 1.0])), "effective_count": 3.0}


_COUNTS = st.dictionaries(st.sampled_from([f"k{i}" for i in range(40)]), st.integers(1, 500), max_size=40)


@settings(max_examples=300, deadline=None)
@given(counts=_COUNTS, anonymous=st.integers(0, 50), share=st.floats(0.01, 1.0))
def test_no_scorer_holds_more_than_the_share_or_one_vote(
    counts: dict[str, int], anonymous: int, share: float
) -> None:
    all_counts = {**counts, ANONYMOUS: anonymous}
    weights = scorer_weights(all_counts, share)
    total = sum(weights.values())
    assert weights[ANONYMOUS] == anonymous
    for scorer, n in counts.items():
        assert weights[scorer] <= n
        assert weights[scorer] <= max(1.0, share * total) + 1e-9
    # The level is the largest that satisfies the cap: a bisection over t agrees.
    level = max((w for s, w in weights.items() if s != ANONYMOUS and w < counts[s]), default=None)
    if level is not None and level > 1.0:
        bumped = level * (1 + 1e-6)
        assert bumped > share * (anonymous + sum(min(n, bumped) for n in counts.values()))


@settings(max_examples=200, deadline=None)
@given(
    organic=st.lists(st.tuples(st.integers(1, 20), st.integers(0, 100)), min_size=20, max_size=40),
    spam_count=st.integers(1, 2000),
    spam_score=st.integers(0, 100),
    share=st.sampled_from([0.02, 0.05, 0.1]),
)
def test_a_single_scorers_influence_never_exceeds_the_cap(
    organic: list[tuple[int, int]], spam_count: int, spam_score: int, share: float
) -> None:
    """Against the others' mean at the same weights, one scorer shifts the mean by <= its share."""
    scorers = {f"k{i}": _sums([score / 100] * n) for i, (n, score) in enumerate(organic)}
    scorers["k_spam"] = _sums([spam_score / 100] * spam_count)
    weights = scorer_weights({s: v.count for s, v in scorers.items()}, share)
    total = sum(weights.values())
    if max(weights.values()) <= 1.0 and share * total < 1.0:
        return  # too few scorers for any cap: one key, one vote (tested above)
    assert weights["k_spam"] / total <= share + 1e-9
    mean = capped_statistics(scorers, share)["mean_score"]
    others = total - weights["k_spam"]
    others_mean = (
        sum(weights[s] * v.sum_micros / v.count for s, v in scorers.items() if s != "k_spam") / others
    )
    assert abs(mean - others_mean / 1e6) <= share + 1e-6


def test_the_fleet_view_caps_a_scorer_across_partitions_with_the_recorded_share() -> None:
    latest: dict[str, object] = {}
    for partition in (0, 1):
        stream = Stream(QualityAggregator(QualityConfig(max_scorer_share=0.1)))
        for i in range(15):
            stream.request(f"o{i}")
            stream.score(f"o{i}", 1.0, f"k{partition}-{i}", team="search")
        for i in range(100):
            stream.request(f"s{i}", api_key_id="k_spam", team="x", customer="acme")
            stream.score(f"s{i}", 0.0, "k_spam", team="x")
        for record in stream.aggregator.changes(T0):
            latest[record_key(record.key, partition)] = record.value
    view = fleet_quality(latest)[KEY]  # type: ignore[arg-type]
    assert view["count"] == 230
    # 30 organic scorers of one score each and k_spam at the cap t = 0.1 * (30 + t): 3.33.
    assert view["effective_count"] == pytest.approx(30 + 30 / 9, abs=1e-5)
    assert view["mean_score"] == pytest.approx(30 / (30 + 30 / 9), abs=1e-5)
