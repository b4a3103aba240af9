"""Hedge delay: off, fixed, or the first choice's P95 clamped; cold deployments use a default."""

from __future__ import annotations

import pytest

from router_service.routing.hedge import hedge_delay_s
from router_service.routing.policy import HedgeConfig
from tests.routing.factories import FixedLatency

LIVE = FixedLatency(p95={"a/x": 1.5, "b/fast": 0.01, "c/slow": 60.0}, ttft={"a/x": 0.3})


@pytest.mark.parametrize(
    ("hedge", "key", "streaming", "delay"),
    [
        (HedgeConfig(enabled=False, delay_s=1.0), "a/x", False, None),
        (HedgeConfig(enabled=True, max_hedges=0), "a/x", False, None),
        (HedgeConfig(enabled=True, delay_s=0.25), "a/x", False, 0.25),
        (HedgeConfig(enabled=True), "a/x", False, 1.5),
        (HedgeConfig(enabled=True), "a/x", True, 0.3),  # streaming hedges on time to first token
        (HedgeConfig(enabled=True, min_delay_s=0.05), "b/fast", False, 0.05),
        (HedgeConfig(enabled=True, max_delay_s=10.0), "c/slow", False, 10.0),
        (HedgeConfig(enabled=True, cold_delay_s=2.0), "d/cold", False, 2.0),
    ],
)
def test_hedge_delay(hedge: HedgeConfig, key: str, streaming: bool, delay: float | None) -> None:
    assert hedge_delay_s(hedge, LIVE, key, 0.0, streaming=streaming) == delay


def test_without_live_signals_a_p95_hedge_uses_the_cold_delay() -> None:
    assert hedge_delay_s(HedgeConfig(enabled=True, cold_delay_s=0.7), None, "a/x", 0.0) == 0.7
