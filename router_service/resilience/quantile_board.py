"""The P95s routing reads, per deployment, each refreshed about every `refresh_s`.

Computing quantiles from a sketch costs microseconds, and routing needs a P95 for every candidate
of every request: so they are kept in plain dicts and refreshed from a heap of due times, and a
read is a dict lookup. Refresh intervals are staggered (0.5 to 1.5 x refresh_s, stepping through
a golden-ratio sequence) so that deployments first seen together do not all refresh on the same
request. Deterministic: no clock, no randomness.
"""

from __future__ import annotations

import heapq

from router_service.resilience.latency_sketch import LatencySketch

_GOLDEN_RATIO_FRACTION = 0.6180339887498949


class QuantileBoard:
    __slots__ = ("_due", "_phase", "_refresh_s", "_sequence", "latency", "ttft")

    def __init__(self, refresh_s: float) -> None:
        self._refresh_s = refresh_s
        self._due: list[tuple[float, int, str, LatencySketch, LatencySketch]] = []
        self._sequence = 0  # heap tie-breaker, so sketches are never compared
        self._phase = 0.0
        # P95 seconds per deployment key; only deployments with enough data are present.
        self.latency: dict[str, float] = {}
        self.ttft: dict[str, float] = {}

    def track(self, key: str, latency: LatencySketch, ttft: LatencySketch, now: float) -> None:
        """Publish `key`'s P95s from the next `refresh` on, and keep them fresh."""
        self._push(now, key, latency, ttft)

    def refresh(self, now: float) -> None:
        """Recompute the P95s that are due; each at most once per call."""
        due = self._due
        if not due or due[0][0] > now:
            return
        ready = []
        while due and due[0][0] <= now:
            ready.append(heapq.heappop(due))
        for _, _, key, latency, ttft in ready:
            self._publish(self.latency, key, latency, now)
            self._publish(self.ttft, key, ttft, now)
            self._push(now + self._refresh_s * (0.5 + self._next_phase()), key, latency, ttft)

    @staticmethod
    def _publish(board: dict[str, float], key: str, sketch: LatencySketch, now: float) -> None:
        quantiles = sketch.quantiles(now)
        if quantiles is None:
            board.pop(key, None)
        else:
            board[key] = quantiles.p95_s

    def _push(self, due_at: float, key: str, latency: LatencySketch, ttft: LatencySketch) -> None:
        self._sequence += 1
        heapq.heappush(self._due, (due_at, self._sequence, key, latency, ttft))

    def _next_phase(self) -> float:
        self._phase = (self._phase + _GOLDEN_RATIO_FRACTION) % 1.0
        return self._phase
