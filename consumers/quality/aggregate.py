"""Feedback quality of one input partition: scores per model x task type over the last days.

Decision and completion events only feed the join index (join.py); a feedback event is counted
under the model that answered its request and the request's task type, in the UTC day of the
feedback's event time. The last `window_days` days (by the partition's watermark) are kept.
Feedback is dropped (and counted) when its request cannot be attributed, when its day is older
than the window, or when the score is not a number in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from consumers.aggregator import DimensionRecord, JsonDict
from consumers.events import Completion, Decision, Event, Feedback
from consumers.quality.join import JoinConfig, RequestIndex
from consumers.quality.scores import ScoreSums, statistics, total
from consumers.restore_gate import RestoreGate
from consumers.snapshot_keys import part
from consumers.windows import parse_rfc3339, rfc3339, window_start

KIND = "model_quality"
DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class QualityConfig:
    window_days: int = 7
    join: JoinConfig = field(default_factory=JoinConfig)


class ModelTaskQuality:
    """One model x task's score sums per UTC day: day start -> ScoreSums."""

    __slots__ = ("days", "model", "task_type")

    def __init__(self, model: str, task_type: str) -> None:
        self.model = model
        self.task_type = task_type
        self.days: dict[int, ScoreSums] = {}


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

    def apply(self, event: Event, offset: int) -> bool:
        body = event.body
        if isinstance(body, Feedback):
            self._advance(event.envelope.event_time_s)
            return self._count(event, body, offset)
        self.index(event, offset)
        return True

    def index(self, event: Event, offset: int) -> None:
        envelope = event.envelope
        body = event.body
        if isinstance(body, Decision):
            self._requests.note_task(envelope.request_id, body.task_type, offset, envelope.event_time_s)
        elif isinstance(body, Completion):
            self._requests.note_model(envelope.request_id, body.model, offset, envelope.event_time_s)
        else:
            return
        self._advance(envelope.event_time_s)
        self._requests.evict(self._watermark_s)

    def index_start(self) -> int | None:
        return self._requests.start_offset()

    def restore(self, key: str, value: JsonDict, covered_offset: int) -> None:
        dimension = value["dimension"]
        state = ModelTaskQuality(str(dimension["model"]), str(dimension["task_type"]))
        state.days = {int(parse_rfc3339(day["start"])): ScoreSums.from_json(day) for day in value["days"]}
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

    def _count(self, event: Event, feedback: Feedback, offset: int) -> bool:
        joined = self._requests.lookup(event.envelope.request_id)
        day = window_start(event.envelope.event_time_s, DAY_S)
        if joined is None or day < self._retain_from or not _valid_score(feedback.score):
            return False
        task_type, model = joined
        key = quality_key(model, task_type)
        if self._gate.admits(key, offset):
            state = self._dims.get(key)
            if state is None:
                state = self._dims[key] = ModelTaskQuality(model, task_type)
            state.days.setdefault(day, ScoreSums()).add(feedback.score)
            self._dirty.add(key)
        return True

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
        return {
            "kind": KIND,
            "dimension": {"model": state.model, "task_type": state.task_type},
            "window": {
                "start": rfc3339(self._retain_from),
                "end": rfc3339(self._retain_from + self._config.window_days * DAY_S),
                "days": self._config.window_days,
            },
            **statistics(total(state.days.values())),
            "days": [{"start": rfc3339(day), **sums.to_json()} for day, sums in sorted(state.days.items())],
        }


def _valid_score(score: float) -> bool:
    return math.isfinite(score) and 0.0 <= score <= 1.0
