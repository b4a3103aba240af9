"""Latency quantiles that merge across partitions: DataDog's DDSketch (`ddsketch` on PyPI).

This is the same sketch the routers keep for their own rolling P95s
(router_service/resilience/latency_sketch.py), read the same way (`get_quantile_value`), so a P95
the fleet publishes and one a router computes mean the same thing: the value at rank q * (n - 1)
of the samples, within a relative error of `relative_accuracy` (1%: a true 1,200 ms P95 reads
between 1,188 and 1,212 ms). That guarantee is the library's (Masson et al., VLDB 2019).

Bucket i holds values in (gamma**(i-1), gamma**i] with gamma = (1 + a) / (1 - a). Two sketches
with the same `a` merge by adding bucket counts, exactly, in any order: that is what lets each
consumer publish one sketch per input partition and every reader merge them into fleet-wide
quantiles. Values are non-negative numbers (milliseconds here); zero and negatives count in the
zero bucket.

JSON form (in the health snapshots, unchanged from the home-made sketch this replaced, so stored
and published sketches still read): {"relative_accuracy": 0.01, "zero_count": 0,
"bins": {"<index>": count, ...}}, the index being DDSketch's key (ceil(log_gamma(value))).
"""

from __future__ import annotations

from typing import Any

from ddsketch import DDSketch
from ddsketch.pb.proto import DDSketchProto

DEFAULT_RELATIVE_ACCURACY = 0.01


class LogHistogram:
    __slots__ = ("_gamma", "_sketch", "relative_accuracy")

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._sketch = DDSketch(relative_accuracy)

    @property
    def count(self) -> int:
        return int(self._sketch.count)

    def add(self, value: float, count: int = 1) -> None:
        # Negatives are clock noise, not latencies: counted as zero rather than in a negative store.
        self._sketch.add(value if value > 0 else 0.0, count)

    def merge(self, other: LogHistogram) -> None:
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("cannot merge sketches of different relative accuracy")
        self._sketch.merge(other._sketch)

    def quantile(self, q: float) -> float | None:
        """The value at rank q * (count - 1), within the relative accuracy; None if empty."""
        value = self._sketch.get_quantile_value(q)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        # The library's own serialization (a protobuf message) carries the dense bins; the JSON
        # keeps only the occupied ones, by key.
        proto = DDSketchProto.to_proto(self._sketch)  # type: ignore[no-untyped-call]  # no annotations upstream
        offset = proto.positiveValues.contiguousBinIndexOffset
        bins = {
            str(offset + i): int(count)
            for i, count in enumerate(proto.positiveValues.contiguousBinCounts)
            if count
        }
        return {"relative_accuracy": self.relative_accuracy, "zero_count": int(proto.zeroCount), "bins": bins}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogHistogram:
        sketch = cls(float(data["relative_accuracy"]))
        zero_count = int(data["zero_count"])
        if zero_count:
            sketch._sketch.add(0.0, zero_count)
        for index, count in data["bins"].items():
            if int(count) > 0:
                # A bucket's representative value (the one quantiles report) lies mid-bucket in
                # log space, so adding it lands in the same key: counts round-trip exactly.
                sketch._sketch.add(sketch.bucket_value(int(index)), int(count))
        return sketch

    def bucket_value(self, index: int) -> float:
        """What a quantile falling in bucket `index` reports: within `relative_accuracy` of all of it."""
        return 2 * self._gamma**index / (self._gamma + 1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable
