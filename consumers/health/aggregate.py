"""Provider health of one input partition: a rolling window of attempt outcomes per provider/model.

The window is `window_s` long, cut into `slot_s` slots by event time; it ends at the partition's
watermark (the newest event time seen), so the state is a function of the records alone. An
attempt older than the oldest kept slot is late and dropped. Every flush publishes every
provider/model that has attempts in the window (rates move as the window slides even without new
attempts) and a tombstone for one whose window emptied, so a reader never sees stale health as
current. A timeout its router's own stalled loop caused (AttemptEvent.router_stalled) is counted
as cancelled: a lost hedge or a caller gone says as little about the deployment.

Beside the slots, each deployment keeps what it is doing now (router_contract/health_recent.py):
provider failures since its newest success and the breakers routers reported opening on it. A
deployment whose slots left the window stays while a reported breaker is still open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from consumers.aggregator import DimensionRecord, JsonDict
from consumers.events import Attempt, Event
from consumers.restore_gate import RestoreGate
from router_contract.health_recent import Recent
from router_contract.health_score import PROVIDER_ERRORS, ScoreConfig, merged, summary
from router_contract.health_slots import Slot
from router_contract.sketch import DEFAULT_RELATIVE_ACCURACY
from router_contract.snapshot_keys import part
from router_contract.windows import rfc3339, window_start

KIND = "provider_health"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    window_s: int = 300
    slot_s: int = 30
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    score: ScoreConfig = field(default_factory=ScoreConfig)

    def __post_init__(self) -> None:
        if self.slot_s <= 0 or self.window_s % self.slot_s:
            raise ValueError("window_s must be a positive multiple of slot_s")


class DeploymentHealth:
    """One provider/model's slots in the window (slot start -> Slot), and what it does now."""

    __slots__ = ("model", "provider", "recent", "slots")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.slots: dict[int, Slot] = {}
        self.recent = Recent()


def deployment_key(provider: str, model: str) -> str:
    return f"{part(provider)}/{part(model)}"


class HealthAggregator:
    def __init__(self, config: HealthConfig = HealthConfig()) -> None:
        self._config = config
        self._dims: dict[str, DeploymentHealth] = {}
        self._expired: set[str] = set()
        self._gate = RestoreGate()
        self._watermark_s = 0.0
        self._retain_from = 0

    def apply(self, event: Event, offset: int) -> bool:
        attempt = event.body
        if not isinstance(attempt, Attempt):
            return True  # not ours (the runner only routes attempts here)
        self._advance(event.envelope.event_time_s)
        start = window_start(event.envelope.event_time_s, self._config.slot_s)
        if start < self._retain_from:
            return False
        key = deployment_key(attempt.provider, attempt.model)
        if self._gate.admits(key, offset):
            counted = _as_evidence(attempt)
            self._slot(key, counted, start).add(counted)
            _note(self._dims[key].recent, event, counted)
        return True

    def index(self, event: Event, offset: int) -> None:
        return None

    def index_start(self) -> int | None:
        return None

    def restore(self, key: str, value: JsonDict, covered_offset: int) -> None:
        dimension = value["dimension"]
        state = DeploymentHealth(str(dimension["provider"]), str(dimension["model"]))
        state.slots = dict(Slot.from_json(slot) for slot in value["slots"])
        state.recent = Recent.from_json(value.get("recent"))  # None: written before the field
        self._dims[key] = state
        self._gate.cover(key, covered_offset)

    def meta(self) -> JsonDict:
        return {"watermark_s": self._watermark_s}

    def restore_meta(self, meta: JsonDict) -> None:
        self._advance(float(meta["watermark_s"]))

    def changes(self, now_s: float) -> list[DimensionRecord]:
        records = [DimensionRecord(key, self._value(state)) for key, state in sorted(self._dims.items())]
        records += [DimensionRecord(key, None) for key in sorted(self._expired - self._dims.keys())]
        self._expired.clear()
        return records

    def mark_dirty(self, keys: Iterable[str]) -> None:
        # Every live deployment is published on each flush anyway; only tombstones need a retry.
        self._expired.update(key for key in keys if key not in self._dims)

    def _slot(self, key: str, attempt: Attempt, start: int) -> Slot:
        state = self._dims.get(key)
        if state is None:
            state = self._dims[key] = DeploymentHealth(attempt.provider, attempt.model)
        slot = state.slots.get(start)
        if slot is None:
            slot = state.slots[start] = Slot(self._config.relative_accuracy)
        return slot

    def _advance(self, event_time_s: float) -> None:
        if event_time_s <= self._watermark_s:
            return
        self._watermark_s = event_time_s
        slot_s = self._config.slot_s
        retain_from = window_start(event_time_s, slot_s) - self._config.window_s + slot_s
        if retain_from != self._retain_from:
            self._retain_from = retain_from
            self._prune()

    def _prune(self) -> None:
        for key, state in list(self._dims.items()):
            state.slots = {start: slot for start, slot in state.slots.items() if start >= self._retain_from}
            state.recent.prune(self._retain_from)
            if not state.slots and not state.recent.open_breakers(self._watermark_s):
                del self._dims[key]
                self._expired.add(key)

    def _value(self, state: DeploymentHealth) -> JsonDict:
        span_s = max(float(self._config.slot_s), self._watermark_s - self._retain_from)
        total = merged(state.slots.values(), self._config.relative_accuracy)
        return {
            "kind": KIND,
            "dimension": {"provider": state.provider, "model": state.model},
            "window": {
                "start": rfc3339(self._retain_from),
                "end": rfc3339(self._watermark_s),
                "seconds": self._config.window_s,
                "slot_seconds": self._config.slot_s,
            },
            **summary(total, span_s, self._config.score, state.recent, self._watermark_s),
            "slots": [slot.to_json(start) for start, slot in sorted(state.slots.items())],
            "recent": state.recent.to_json(),
        }


def _as_evidence(attempt: Attempt) -> Attempt:
    """The attempt as evidence about its deployment. A timeout that fired late because its
    router's own loop was blocked (AttemptEvent.router_stalled) says nothing about the upstream:
    it counts as cancelled, neither a failure nor a success, as that router's breaker counted it,
    so one router's GC pause cannot demote a healthy deployment for the whole fleet."""
    if attempt.router_stalled:
        return dataclasses.replace(attempt, outcome="cancelled", error_class="cancelled")
    return attempt


def _note(recent: Recent, event: Event, attempt: Attempt) -> None:
    time_s = event.envelope.event_time_s
    if attempt.outcome == "success":
        recent.success(time_s)
    elif attempt.outcome == "error" and attempt.error_class in PROVIDER_ERRORS:
        recent.failure(time_s)
    if attempt.breaker_cooldown_ms is not None:
        recent.breaker_opened(event.envelope.router_instance, time_s, attempt.breaker_cooldown_ms / 1000)
