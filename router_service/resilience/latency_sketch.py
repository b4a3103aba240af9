"""Rolling latency quantiles (P50/P95/P99) over a time window, in bounded memory.

The sketch is DataDog's DDSketch (`ddsketch` on PyPI), the same one the consumers publish
(router_contract/sketch.py), read the same way (`get_quantile_value`): so this router's P95 and the
fleet's, which routing mixes (fleet/signals.py fills a cold local P95 with the fleet's), mean the
same thing. A quantile is the value at rank q * (n - 1) of the samples in the window, within a
relative error of `relative_accuracy` (1%: a true 200 ms P95 reads between 198 and 202 ms); the
guarantee is the library's (Masson et al., VLDB 2019). Samples are clamped to [min_s, max_s],
which also bounds the sketch's dense bins (1 ms to 10 min at 1%: about 660).

The window is `slots` sub-windows, one sketch each, cleared as time moves past them (the rule of
window.py's SlidingWindow); a read merges the live ones. Recording is one DDSketch add (under a
microsecond); a read merges up to `slots` sketches, tens of microseconds, which is why routing
reads P95s from the QuantileBoard rather than from here per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddsketch import DDSketch


@dataclass(frozen=True, slots=True)
class SketchConfig:
    window_s: float = 60.0
    slots: int = 6
    min_s: float = 0.001
    max_s: float = 600.0
    relative_accuracy: float = 0.01  # as the consumers' (router_contract.sketch.DEFAULT_RELATIVE_ACCURACY)
    # Fewer samples than this in the window: no quantiles (the cold-start rules apply instead).
    min_samples: int = 10


@dataclass(frozen=True, slots=True)
class Quantiles:
    p50_s: float
    p95_s: float
    p99_s: float
    count: int


class LatencySketch:
    __slots__ = ("_config", "_epoch", "_slot_s", "_slots")

    def __init__(self, config: SketchConfig) -> None:
        if config.window_s <= 0 or config.slots < 1:
            raise ValueError("window_s must be > 0 and slots >= 1")
        self._config = config
        self._slot_s = config.window_s / config.slots
        self._slots = [DDSketch(config.relative_accuracy) for _ in range(config.slots)]
        self._epoch: int | None = None  # absolute index of the current slot: int(now // slot_s)

    def record(self, seconds: float, now: float) -> None:
        self._advance(now)
        assert self._epoch is not None
        config = self._config
        self._slots[self._epoch % config.slots].add(min(max(seconds, config.min_s), config.max_s))

    def quantiles(self, now: float) -> Quantiles | None:
        """P50/P95/P99 over the window, or None with fewer than `min_samples` samples."""
        self._advance(now)
        live = [s for s in self._slots if s.count]
        total = int(sum(s.count for s in live))
        if total < self._config.min_samples:
            return None
        merged = DDSketch(self._config.relative_accuracy)
        for sketch in live:
            merged.merge(sketch)
        return Quantiles(
            p50_s=_value(merged, 0.50),
            p95_s=_value(merged, 0.95),
            p99_s=_value(merged, 0.99),
            count=total,
        )

    def _advance(self, now: float) -> None:
        epoch = int(now // self._slot_s)
        current = self._epoch
        if epoch == current:
            return
        slots = self._config.slots
        if current is None or epoch - current >= slots:
            expired = range(slots)
        elif epoch < current:
            # The clock went backwards (tests, NTP steps): keep counting into the current slot
            # rather than resurrecting expired ones.
            return
        else:
            expired = range(current + 1, epoch + 1)
        for i in expired:
            if self._slots[i % slots].count:
                self._slots[i % slots] = DDSketch(self._config.relative_accuracy)
        self._epoch = epoch


def _value(sketch: DDSketch, q: float) -> float:
    value = sketch.get_quantile_value(q)
    assert value is not None  # the sketch is not empty
    return float(value)
