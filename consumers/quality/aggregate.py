"""Feedback quality of one input partition: scores per model x task type over the last days.

Decision and completion events only feed the join index (join.py); a feedback event is counted
under the model that answered its request and the request's task type, in the UTC day of the
feedback's event time, and under its scorer (the feedback envelope's API key id). The last
`window_days` days (by the partition's watermark) are kept.

Trusted feedback (issue 13):
- A score counts only when its scorer may score the request (access.py: the key that made it, a
  key of the same team and customer, or an evaluator of the same customer), whatever the router
  checked: a router that does not know the request (`require_known_request: false`) cannot.
- One score per (request, scorer key): a later score (by event time, then offset) replaces the
  earlier one in the sums (it is taken out of its day and the new one added); an older one is
  dropped. Replay after a restore rebuilds the scores in force (join.py) without counting, so
  a replacement after a restart takes out exactly what was counted before it.
- Feedback without a scorer key (auth off) counts each time, as before keys existed.
- Sums are kept per scorer, so that readers can cap one scorer's share of the weight
  (router_contract/quality_scores.py; applied fleet-wide in router_contract/readers/quality.py).
  At most `max_scorers` scorers per model x task and partition are kept apart; the scores of any
  further ones share the bucket "*" (no key id can be "*"), which is capped as if it were one
  scorer.
Dropped feedback is counted by reason (metrics.py DROP_REASONS): "unattributed" (unknown or
unanswered request), "invalid_score" (not a number in [0, 1]), "not_allowed" (the scorer may
not score the request), "superseded" (older than the scorer's score in force),
"too_many_scorers" (past max_scorers_per_request), "late" (dated before the window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from consumers.aggregator import DimensionRecord, JsonDict
from consumers.events import Completion, Decision, Event, Feedback
from consumers.quality.access import Party, may_score
from consumers.quality.join import JoinConfig, RequestIndex, ScoreInForce
from consumers.restore_gate import RestoreGate
from router_contract.quality_scores import (
    ANONYMOUS,
    DEFAULT_MAX_SCORER_SHARE,
    MICROS,
    ScoreSums,
    capped_statistics,
)
from router_contract.readers.quality import day_scorers
from router_contract.snapshot_keys import part
from router_contract.windows import parse_rfc3339, rfc3339, window_start

KIND = "model_quality"
DAY_S = 86_400
OVERFLOW_SCORER = "*"


@dataclass(frozen=True, slots=True)
class QualityConfig:
    window_days: int = 7
    join: JoinConfig = field(default_factory=JoinConfig)
    max_scorer_share: float = DEFAULT_MAX_SCORER_SHARE  # readers cap each scorer at this share
    max_scorers: int = 500  # kept apart per model x task and partition (bounds a record's size)

    def __post_init__(self) -> None:
        if not 0 < self.max_scorer_share <= 1:
            raise ValueError("quality: max_scorer_share must be in (0, 1]")


class ModelTaskQuality:
    """One model x task's score sums per UTC day and scorer: day start -> scorer -> ScoreSums."""

    __slots__ = ("days", "model", "task_type")

    def __init__(self, model: str, task_type: str) -> None:
        self.model = model
        self.task_type = task_type
        self.days: dict[int, dict[str, ScoreSums]] = {}

    def has_scorer(self, scorer: str) -> bool:
        return any(scorer in day for day in self.days.values())

    def scorer_count(self) -> int:
        return len({scorer for day in self.days.values() for scorer in day})

    def scorers(self) -> dict[str, ScoreSums]:
        """Per scorer, over the days kept."""
        out: dict[str, ScoreSums] = {}
        for day in self.days.values():
            for scorer, sums in day.items():
                out.setdefault(scorer, ScoreSums()).merge(sums)
        return out


def quality_key(model: str, task_type: str) -> str:
    return f"model={part(model)},task={part(task_type)}"


class QualityAggregator:
    def __init__(self, config: QualityConfig = QualityConfig()) -> None:
        self._config = config
        self._requests = RequestIndex(config.join)
        self._dims: dict[str, ModelTaskQuality] = {}
        self._dirty: set[str] = set()
        self._gate = RestoreGate()
        self._watermark_s = 0.0
        self._retain_from = 0

    def apply(self, event: Event, offset: int) -> bool | str:
        body = event.body
        if isinstance(body, Feedback):
            self._advance(event.envelope.event_time_s)
            return self._score(event, body, offset, count=True)
        self.index(event, offset)
        return True

    def index(self, event: Event, offset: int) -> None:
        envelope = event.envelope
        body = event.body
        owner = Party(envelope.api_key_id, envelope.team, envelope.customer)
        if isinstance(body, Decision):
            request_id, time_s = envelope.request_id, envelope.event_time_s
            self._requests.note_task(request_id, body.task_type, offset, time_s, owner)
        elif isinstance(body, Completion):
            request_id, time_s = envelope.request_id, envelope.event_time_s
            self._requests.note_model(request_id, body.model, offset, time_s, owner)
        elif isinstance(body, Feedback):
            # Replay of a counted record: only the score in force is rebuilt (the sums have it).
            self._score(event, body, offset, count=False)
            return
        else:
            return
        self._advance(envelope.event_time_s)
        self._requests.evict(self._watermark_s)

    def index_start(self) -> int | None:
        return self._requests.start_offset()

    def restore(self, key: str, value: JsonDict, covered_offset: int) -> None:
        dimension = value["dimension"]
        state = ModelTaskQuality(str(dimension["model"]), str(dimension["task_type"]))
        state.days = {int(parse_rfc3339(day["start"])): day_scorers(day) for day in value["days"]}
        self._dims[key] = state
        self._gate.cover(key, covered_offset)

    def meta(self) -> JsonDict:
        return {"watermark_s": self._watermark_s}

    def restore_meta(self, meta: JsonDict) -> None:
        self._advance(float(meta["watermark_s"]))

    def changes(self, now_s: float) -> list[DimensionRecord]:
        records = [DimensionRecord(key, self._value(key)) for key in sorted(self._dirty)]
        self._dirty.clear()
        return records

    def mark_dirty(self, keys: Iterable[str]) -> None:
        self._dirty.update(keys)

    @property
    def pending_requests(self) -> int:
        return len(self._requests)

    def _score(self, event: Event, feedback: Feedback, offset: int, *, count: bool) -> bool | str:
        """Count (or, replaying, only remember) one feedback event; True or why it was dropped.

        Everything that decides what the score in force is depends only on the partition's
        records in order, never on the watermark, so a replay rebuilds it exactly; only whether a
        day is still kept (and so summed) depends on the watermark."""
        envelope = event.envelope
        facts = self._requests.joined(envelope.request_id)
        if facts is None:
            return "unattributed"
        if not _valid_score(feedback.score):
            return "invalid_score"
        scorer = Party(envelope.api_key_id, envelope.team, envelope.customer)
        if not may_score(scorer, feedback.evaluator, facts.owner):
            return "not_allowed"
        key = quality_key(facts.model, facts.task_type)
        day = window_start(envelope.event_time_s, DAY_S)
        micros = round(feedback.score * MICROS)
        counts = count and self._gate.admits(key, offset)
        if scorer.key_id == ANONYMOUS:  # auth off: every score counts, as before keys existed
            if day < self._retain_from:
                return "late"
            if counts:
                self._add(key, facts.model, facts.task_type, day, ANONYMOUS, micros)
            return True
        previous = facts.scores.get(scorer.key_id)
        if previous is not None and not previous.precedes(envelope.event_time_s, offset):
            return "superseded"
        if previous is None and len(facts.scores) >= self._config.join.max_scorers_per_request:
            return "too_many_scorers"
        if counts:
            if previous is not None:
                self._take_out(previous)
            bucket = self._bucket(key, scorer.key_id)
        else:
            bucket = self._counted_bucket(key, scorer.key_id)
        facts.scores[scorer.key_id] = ScoreInForce(envelope.event_time_s, offset, micros, day, key, bucket)
        if day < self._retain_from:
            return "late"
        if counts:
            self._add(key, facts.model, facts.task_type, day, bucket, micros)
        return True

    def _bucket(self, key: str, scorer: str) -> str:
        """Where a keyed scorer's scores are summed: its own entry, or the overflow bucket once
        the dimension keeps `max_scorers` others."""
        state = self._dims.get(key)
        if state is None or state.has_scorer(scorer) or state.scorer_count() < self._config.max_scorers:
            return scorer
        return OVERFLOW_SCORER

    def _counted_bucket(self, key: str, scorer: str) -> str:
        """Where a score already in the (restored) sums was summed: its own entry when the
        dimension has one, else the overflow bucket when there is one."""
        state = self._dims.get(key)
        if state is None or state.has_scorer(scorer) or not state.has_scorer(OVERFLOW_SCORER):
            return scorer
        return OVERFLOW_SCORER

    def _add(self, key: str, model: str, task_type: str, day: int, scorer: str, micros: int) -> None:
        state = self._dims.get(key)
        if state is None:
            state = self._dims[key] = ModelTaskQuality(model, task_type)
        state.days.setdefault(day, {}).setdefault(scorer, ScoreSums()).add_micros(micros)
        self._dirty.add(key)

    def _take_out(self, previous: ScoreInForce) -> None:
        """Remove a replaced score from the sums it was added to (if its day is still kept)."""
        state = self._dims.get(previous.dimension)
        day = None if state is None else state.days.get(previous.day)
        sums = None if day is None else day.get(previous.bucket)
        if state is None or day is None or sums is None or sums.count == 0:
            return  # its day left the window: nothing of it is left to take out
        sums.remove_micros(previous.micros)
        self._dirty.add(previous.dimension)
        if sums.count == 0:
            del day[previous.bucket]
            if not day:
                del state.days[previous.day]
                if not state.days:
                    del self._dims[previous.dimension]  # still dirty: published as a tombstone

    def _advance(self, event_time_s: float) -> None:
        if event_time_s <= self._watermark_s:
            return
        self._watermark_s = event_time_s
        retain_from = window_start(event_time_s, DAY_S) - (self._config.window_days - 1) * DAY_S
        if retain_from != self._retain_from:
            self._retain_from = retain_from
            self._prune()

    def _prune(self) -> None:
        for key, state in list(self._dims.items()):
            kept = {day: sums for day, sums in state.days.items() if day >= self._retain_from}
            if len(kept) != len(state.days):
                state.days = kept
                self._dirty.add(key)
                if not kept:
                    del self._dims[key]  # still dirty: published as a tombstone

    def _value(self, key: str) -> JsonDict | None:
        state = self._dims.get(key)
        if state is None:
            return None
        share = self._config.max_scorer_share
        return {
            "kind": KIND,
            "dimension": {"model": state.model, "task_type": state.task_type},
            "window": {
                "start": rfc3339(self._retain_from),
                "end": rfc3339(self._retain_from + self._config.window_days * DAY_S),
                "days": self._config.window_days,
            },
            **capped_statistics(state.scorers(), share),
            "max_scorer_share": share,
            "days": [_day_json(day, scorers) for day, scorers in sorted(state.days.items())],
        }


def _day_json(day: int, scorers: dict[str, ScoreSums]) -> JsonDict:
    totals = ScoreSums()
    for sums in scorers.values():
        totals.merge(sums)
    return {
        "start": rfc3339(day),
        **totals.to_json(),
        "scorers": {scorer: sums.to_json() for scorer, sums in sorted(scorers.items())},
    }


def _valid_score(score: float) -> bool:
    return math.isfinite(score) and 0.0 <= score <= 1.0
