"""Cost rollups of one input partition: exact sums per dimension in minute, hour, day, week and
month windows.

Windows are by event time: UTC minutes, hours and days, UTC calendar weeks (ISO, from Monday)
and months, and, for each configured time zone (`time_zones`, COST_TIME_ZONES), that zone's
calendar hours, days, weeks and months, the windows budgets in that zone count
(router_contract/windows.py `Grain`). Each granularity keeps two windows: the one
holding the partition's watermark (the newest event time seen) and the one before, so a
dashboard can show "this hour so far" next to the last complete hour. An event older than both
is late: it is left out of that granularity's rollup (counted as late if it fits no granularity
at all); the events topic stays the record of every cost. Retention follows the watermark, never
the wall clock, so replaying the same records always yields the same state.

For rolling budgets (the last hour, day, week or 30 days), the limited dimensions (`total`,
`api_key`, `team`, `customer`; not per-model shares, models, providers or tags) also keep their
cost per rolling bucket (`rolling_periods`; buckets of 150 s, 1 h, 7 h and 30 h, epoch-aligned as
the limits store's): the buckets of the rolling window at the watermark, at most 25 per period, so
at most 100 integers per limited dimension. The reconciler sums them over a budget's window.

Memory is bounded by the retained windows and by `max_dimensions` per partition: past it, a new
dimension is counted under `<name>=_OTHER`. A dimension whose windows all fell out of retention
is dropped and published as a tombstone. So is a restored tag dimension whose key is no longer
in `tag_dimensions` (dimensions.py): removing a key from the config removes its records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from consumers.aggregator import DimensionRecord, JsonDict
from consumers.costs.dimensions import Dimension, dimensions_of, is_configured
from consumers.costs.rollup import DimensionTotals, Starts, rolling_name
from consumers.events import Attempt, Completion, Event
from consumers.restore_gate import RestoreGate
from router_contract.cost_totals import Totals
from router_contract.windows import ROLLING_SECONDS, ROLLUP_GRAINS, Grain, RollingGrain, zone_grains


@dataclass(frozen=True, slots=True)
class CostsConfig:
    granularities: tuple[str, ...] = ROLLUP_GRAINS
    max_dimensions: int = 50_000  # per input partition
    # Caller tag keys whose values are rollup dimensions (`tag:<key>=<value>`); none by default.
    tag_dimensions: frozenset[str] = frozenset()
    # IANA zones besides UTC whose calendar hours, days, weeks and months are rolled up too
    # (those of budgets in `limits.time_zone`); none by default.
    time_zones: tuple[str, ...] = ()
    # Rolling budget periods whose buckets the limited dimensions keep (router_contract/windows.py).
    rolling_periods: tuple[str, ...] = tuple(ROLLING_SECONDS)

    def grains(self) -> dict[str, Grain]:
        names = [*self.granularities, *(name for zone in self.time_zones for name in zone_grains(zone))]
        return {name: Grain(name) for name in dict.fromkeys(names)}

    def rolling(self) -> dict[str, RollingGrain]:
        return {rolling_name(period): RollingGrain(period) for period in dict.fromkeys(self.rolling_periods)}


class CostsAggregator:
    def __init__(self, config: CostsConfig = CostsConfig()) -> None:
        self._grains = config.grains()
        self._rolling = config.rolling()
        self._max_dimensions = config.max_dimensions
        self._tag_keys = config.tag_dimensions
        self._dims: dict[str, DimensionTotals] = {}
        self._dirty: set[str] = set()
        self._gate = RestoreGate()
        self._watermark_s = 0.0
        self._retain_from = {name: 0 for name in (*self._grains, *self._rolling)}
        self._starts: Starts = ()  # the windows of the last event counted
        # [lo, hi): the event times whose windows are all those of `_starts` (empty: recompute)
        self._span = (0.0, 0.0)

    def apply(self, event: Event, offset: int) -> bool:
        cost = event.body
        if isinstance(cost, Attempt) and not cost.billed_unused:
            return True  # an ordinary attempt: its cost, if any, is in its request's completion
        if not isinstance(cost, Completion | Attempt):
            return True  # not ours to count (the runner only routes completions and attempts here)
        event_time_s = event.envelope.event_time_s
        self._advance(event_time_s)
        starts = self._starts_at(event_time_s)
        if not starts:
            return False
        for dimension in dimensions_of(event.envelope, cost, self._tag_keys):
            self._add(dimension, starts, cost, offset)
        return True

    def _starts_at(self, event_time_s: float) -> Starts:
        """The retained windows an event time falls in. Consecutive events nearly always share
        them (the finest changes once a minute), so they are computed once per span of time in
        which none changes, and the same tuple object is returned (DimensionTotals.add compares
        by identity)."""
        lo, hi = self._span
        if lo <= event_time_s < hi:
            return self._starts
        retain_from = self._retain_from
        found: list[tuple[str, int]] = []
        lo, hi = -math.inf, math.inf
        for name, grain in self._grains.items():
            start, end = grain.span(event_time_s)
            lo, hi = max(lo, start), min(hi, end)
            if start >= retain_from[name]:
                found.append((name, start))
        for name, rolling in self._rolling.items():
            bucket = rolling.bucket(event_time_s)
            start_s, end_s = rolling.span(bucket)
            lo, hi = max(lo, start_s), min(hi, end_s)
            if bucket >= retain_from[name]:
                found.append((name, bucket))
        starts = tuple(found)
        if starts != self._starts:
            self._starts = starts
        self._span = (lo, hi)
        return self._starts

    def index(self, event: Event, offset: int) -> None:
        return None  # no lookup state: only the dedupe index (owned by the processor) is rebuilt

    def index_start(self) -> int | None:
        return None

    def restore(self, key: str, value: JsonDict, covered_offset: int) -> None:
        state = DimensionTotals.from_json(value, self._grains, self._rolling)
        if not is_configured(state.dimension, self._tag_keys):
            self._dirty.add(key)  # published as a tombstone: the key leaves the compacted topic
            return
        self._dims[key] = state
        self._gate.cover(key, covered_offset)
        self._prune_one(key, state, None)  # windows already out of retention (restored after the meta)

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

    def totals(self, key: str, granularity: str, start: int) -> Totals | None:
        """The totals of one dimension's window (for tests and the benchmark)."""
        state = self._dims.get(key)
        if state is None:
            return None
        state.settle()
        return state.windows[granularity].get(start)

    def _add(self, dimension: Dimension, starts: Starts, cost: Completion | Attempt, offset: int) -> None:
        key = dimension.key
        if key not in self._dims and len(self._dims) >= self._max_dimensions:
            dimension = dimension.overflow()
            key = dimension.key
        if not self._gate.admits(key, offset):
            return
        state = self._dims.get(key)
        if state is None:
            state = self._dims[key] = DimensionTotals(dimension, self._grains, self._rolling)
        state.add(starts, cost)
        self._dirty.add(key)

    def _advance(self, event_time_s: float) -> None:
        """Move the watermark; when a window closes out of retention, prune every dimension."""
        if event_time_s <= self._watermark_s:
            return
        self._watermark_s = event_time_s
        retain_from = {name: grain.previous_start(event_time_s) for name, grain in self._grains.items()}
        retain_from.update((name, rolling.oldest(event_time_s)) for name, rolling in self._rolling.items())
        # Only the granularities whose retention moved are scanned: most prunes are the minute's
        # (or the rolling hour's 150 s buckets'), and a dimension's other windows cannot have
        # fallen out of theirs.
        moved = [name for name, start in retain_from.items() if start != self._retain_from[name]]
        if moved:
            self._retain_from = retain_from
            self._span = (0.0, 0.0)  # which windows are retained changed: recompute the next starts
            self._prune(moved)

    def _prune(self, names: Iterable[str] | None = None) -> None:
        names = None if names is None else tuple(names)
        for key, state in list(self._dims.items()):
            self._prune_one(key, state, names)

    def _prune_one(self, key: str, state: DimensionTotals, names: tuple[str, ...] | None) -> None:
        if state.prune(self._retain_from, names):
            self._dirty.add(key)
            if state.is_empty():
                self._dims.pop(key, None)  # still dirty: published as a tombstone

    def _value(self, key: str) -> JsonDict | None:
        state = self._dims.get(key)
        return None if state is None else state.to_json(self._grains, self._rolling)

    @property
    def dimension_count(self) -> int:
        return len(self._dims)
