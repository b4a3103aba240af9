"""When to race a second deployment (hedge). The engine does the racing; this says when.

A hedge sends the same request to the next deployment in the chain if the first has not answered
(or, when streaming, has not sent its first token) after a delay, and takes whichever answers
first. A delay near the first choice's P95 hedges only the slowest ~5% of requests, which is what
bounds the extra load (Dean & Barroso, "The Tail at Scale"); each hedge also takes a token from
the retry budget, so hedging stops when the budget says the provider is struggling.
"""

from __future__ import annotations

from router_service.routing.policy import HedgeConfig
from router_service.routing.signals import LiveSignals


def hedge_delay_s(
    hedge: HedgeConfig, live: LiveSignals | None, key: str, now: float, *, streaming: bool = False
) -> float | None:
    """Seconds to wait on `key` before starting a hedge, or None if the policy does not hedge."""
    if not hedge.enabled or hedge.max_hedges < 1:
        return None
    if hedge.delay_s is not None:
        return hedge.delay_s
    p95 = _p95(live, key, now, streaming)
    if p95 is None:
        return hedge.cold_delay_s
    return min(max(p95, hedge.min_delay_s), hedge.max_delay_s)


def _p95(live: LiveSignals | None, key: str, now: float, streaming: bool) -> float | None:
    if live is None:
        return None
    if streaming:
        (ttft,) = live.ttft_p95s((key,), now)
        if ttft is not None:
            return ttft
    (total,) = live.latency_p95s((key,), now)
    return total
