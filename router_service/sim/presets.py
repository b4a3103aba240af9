"""Named simulated-provider profiles.

`fast`, `cheap` and `premium` are the three upstreams of the embedded stack (`router-service up`):
different enough in latency, failure and per-task quality that routing on cost, latency and
quality visibly chooses differently. `instant` answers at once and never fails: benchmarks and
most tests use it, so it must stay free of latency and faults.

Standard library only.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from router_service.sim.profile import SimConfig, SimProfile

INSTANT = SimProfile()

FAST = SimProfile(
    latency_ms_p50=40.0,
    latency_ms_p99=120.0,
    token_interval_ms=2.0,
    error_rate=0.005,
    default_quality=0.75,
    quality={
        "chat": 0.8,
        "extraction": 0.78,
        "retrieval": 0.76,
        "creative": 0.72,
        "code": 0.68,
        "reasoning": 0.62,
    },
    answer_tokens=24,
    cached_prompt_fraction=0.25,
)

CHEAP = SimProfile(
    latency_ms_p50=120.0,
    latency_ms_p99=400.0,
    token_interval_ms=6.0,
    error_rate=0.02,
    rate_limit_rate=0.02,
    retry_after_s=1.0,
    default_quality=0.6,
    quality={
        "chat": 0.66,
        "extraction": 0.68,
        "retrieval": 0.62,
        "creative": 0.55,
        "code": 0.5,
        "reasoning": 0.45,
    },
    answer_tokens=32,
)

PREMIUM = SimProfile(
    latency_ms_p50=250.0,
    latency_ms_p99=900.0,
    token_interval_ms=12.0,
    error_rate=0.005,
    default_quality=0.92,
    quality={
        "chat": 0.9,
        "extraction": 0.91,
        "retrieval": 0.92,
        "creative": 0.93,
        "code": 0.94,
        "reasoning": 0.96,
    },
    answer_tokens=48,
    cached_prompt_fraction=0.5,
    context_window=200_000,
)

PRESETS: Mapping[str, SimProfile] = MappingProxyType(
    {"instant": INSTANT, "fast": FAST, "cheap": CHEAP, "premium": PREMIUM}
)


def preset_config(name: str, *, seed: int | None = None) -> SimConfig:
    """A SimConfig whose every model behaves like preset `name`. Unknown names raise KeyError."""
    if name not in PRESETS:
        raise KeyError(f"unknown sim preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return SimConfig(default=PRESETS[name], seed=seed)
