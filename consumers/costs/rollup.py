"""One dimension's cost totals per retained window, and its snapshot JSON (see costs/__init__.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from consumers.aggregator import JsonDict
from consumers.costs.dimensions import Dimension
from consumers.events import Attempt, Completion
from router_contract.cost_totals import Totals
from router_contract.windows import Grain, RollingGrain, parse_rfc3339, rfc3339

KIND = "cost_rollup"


# The windows one event counts in: ((granularity, window start), ...).
Starts = tuple[tuple[str, int], ...]


class DimensionTotals:
    """One dimension's totals per retained window: granularity -> window start -> Totals.

    Consecutive events of one dimension nearly always fall in the same windows (they change once a
    minute), so an event is added to one pending Totals, which `settle` adds to each of its
    windows when the windows change or before anything reads them: one addition per event
    instead of one per granularity."""

    __slots__ = ("_pending", "_pending_starts", "dimension", "rolling", "windows")

    def __init__(
        self, dimension: Dimension, granularities: Iterable[str], rolling: Iterable[str] = ()
    ) -> None:
        self.dimension = dimension
        self.windows: dict[str, dict[int, Totals]] = {name: {} for name in granularities}
        # Rolling-budget buckets ("rolling-day" -> bucket -> cost nano-USD), for the dimensions
        # budgets count only: at most ROLLING_BUCKETS + 1 per period (the aggregator's retention).
        self.rolling: dict[str, dict[int, int]] = (
            {name: {} for name in rolling} if dimension.is_limited else {}
        )
        self._pending: Totals | None = None
        self._pending_starts: Starts = ()

    def add(self, starts: Starts, cost: Completion | Attempt) -> None:
        """`starts`: the same tuple object for events in the same windows (CostsAggregator reuses
        it), so the common case is one identity check."""
        pending = self._pending
        if pending is None or starts is not self._pending_starts:
            self.settle()
            pending = self._pending = Totals()
            self._pending_starts = starts
        if isinstance(cost, Completion):
            pending.add(cost)
        else:
            pending.add_unused(cost)

    def settle(self) -> None:
        """Adds the pending sums to their windows; every read of `windows` comes after one."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        for name, start in self._pending_starts:
            windows = self.windows.get(name)
            if windows is None:  # a rolling bucket: only the cost, only for limited dimensions
                buckets = self.rolling.get(name)
                if buckets is not None and pending.cost_nanos_usd:
                    buckets[start] = buckets.get(start, 0) + pending.cost_nanos_usd
                continue
            totals = windows.get(start)
            if totals is None:
                totals = windows[start] = Totals()
            totals.merge(pending)

    def prune(self, retain_from: Mapping[str, int], names: Iterable[str] | None = None) -> bool:
        """Drop windows (and rolling buckets) that start before retain_from, of `names` only
        (None: all); True when any was dropped."""
        self.settle()
        dropped = False
        for name in (*self.windows, *self.rolling) if names is None else names:
            kept: dict[int, Totals] | dict[int, int] | None = self.windows.get(name)
            if kept is None:
                kept = self.rolling.get(name)
                if kept is None:
                    continue  # a rolling period of a dimension that keeps no buckets
            for start in [start for start in kept if start < retain_from[name]]:
                del kept[start]
                dropped = True
        return dropped

    def is_empty(self) -> bool:
        return self._pending is None and not any(self.windows.values()) and not any(self.rolling.values())

    def to_json(self, grains: Mapping[str, Grain], rolling: Mapping[str, RollingGrain]) -> JsonDict:
        self.settle()
        out = {
            "kind": KIND,
            "dimension": self.dimension.to_json(),
            "windows": {
                name: [_window_json(start, grains[name], totals) for start, totals in sorted(windows.items())]
                for name, windows in self.windows.items()
            },
        }
        if self.rolling:  # every kept period, empty or not: readers learn which ones are kept
            out["rolling"] = {
                rolling[name].period: {
                    "bucket_ms": rolling[name].bucket_ms,
                    "buckets": [{"bucket": i, "cost_nanos_usd": str(n)} for i, n in sorted(buckets.items())],
                }
                for name, buckets in self.rolling.items()
            }
        return out

    @classmethod
    def from_json(
        cls, data: JsonDict, grains: Mapping[str, Grain], rolling: Mapping[str, RollingGrain]
    ) -> DimensionTotals:
        state = cls(Dimension.from_json(data["dimension"]), grains, rolling)
        for name, windows in data["windows"].items():
            if name in grains:  # a granularity no longer configured is dropped
                state.windows[name] = {int(parse_rfc3339(w["start"])): Totals.from_json(w) for w in windows}
        for period, kept in data.get("rolling", {}).items():  # absent: written before rolling buckets
            name = rolling_name(period)
            if name in state.rolling and int(kept["bucket_ms"]) == rolling[name].bucket_ms:
                state.rolling[name] = {int(b["bucket"]): int(b["cost_nanos_usd"]) for b in kept["buckets"]}
        return state


def rolling_name(period: str) -> str:
    """The name a rolling period's buckets go by among an event's windows (`Starts`)."""
    return f"rolling-{period}"


def _window_json(start: int, grain: Grain, totals: Totals) -> JsonDict:
    return {"start": rfc3339(start), "end": rfc3339(grain.end(start)), **totals.to_json()}
