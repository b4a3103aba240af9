"""The `routing:`, `policies:`, `resilience:` and `classifier:` config sections (pydantic).

How requests are routed: deadlines and attempt timeouts, the policies (candidates, composed
strategies, caps, hedging), breakers and retries, the task classifier's keywords. Every field is
documented with its default in config/example.yaml; `settings.py` converts them into the pure
routing and resilience objects (Policy, BreakerConfig, RetryConfig...), which import no pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from router_service.catalog_schema import checked_usd
from router_service.schema_base import StrictModel


class RoutingConfig(StrictModel):
    default_policy: str = "default"
    # Upper bound for one upstream attempt; always cut to what is left of the caller's deadline.
    attempt_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # Deadline used when the caller sets none (gRPC has no default deadline).
    default_deadline_s: Annotated[float, Field(gt=0)] = 120.0
    # Streams: give up on an attempt that has sent no token within this time (still before
    # anything reached the caller, so it can fall back).
    first_token_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    # Streams: after the first token, an upstream silent for this long ends the stream as
    # interrupted (the caller already has text, so there is no fallback).
    stream_stall_timeout_s: Annotated[float, Field(gt=0)] = 30.0


class HedgeSettings(StrictModel):
    enabled: bool = False
    delay_s: Annotated[float, Field(gt=0)] | None = None  # None: the first choice's rolling P95
    min_delay_s: Annotated[float, Field(ge=0)] = 0.05
    max_delay_s: Annotated[float, Field(gt=0)] = 10.0
    cold_delay_s: Annotated[float, Field(gt=0)] = 2.0
    max_hedges: Annotated[int, Field(ge=0, le=3)] = 1


class StrategyParamsConfig(StrictModel):
    cost_tolerance: Annotated[float, Field(ge=0)] = 0.10
    latency_tolerance: Annotated[float, Field(ge=0)] = 0.10
    quality_tolerance: Annotated[float, Field(ge=0)] = 0.02
    weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    cold_start_p95_s: Annotated[float, Field(gt=0)] | None = None


class PolicyConfig(StrictModel):
    models: list[str] = []
    # Composition of registry keys, "filter > score > tie-break", e.g. "quality>cost>round_robin",
    # or a YAML list. Keys: priority, round_robin, weighted, latency, cost, quality.
    strategy: str | list[str] = "priority"
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    params: StrategyParamsConfig = StrategyParamsConfig()
    max_cost_usd: str | None = None  # decimal string, per request
    min_quality: Annotated[float, Field(ge=0, le=1)] | None = None
    max_p95_s: Annotated[float, Field(gt=0)] | None = None
    min_sensitivity: Literal["public", "internal", "restricted"] | None = None
    regions: list[str] = []
    allowed_providers: list[str] = []
    denied_providers: list[str] = []
    hedge: HedgeSettings = HedgeSettings()

    @field_validator("max_cost_usd")
    @classmethod
    def _cost(cls, value: str | None) -> str | None:
        return checked_usd(value, "a non-negative decimal string, e.g. '0.01'")


class BreakerSettings(StrictModel):
    allowed_fails: Annotated[int, Field(ge=1)] = 3
    fail_window_s: Annotated[float, Field(gt=0)] = 60.0
    min_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0
    cooldown_multiplier: Annotated[float, Field(ge=1)] = 2.0
    max_cooldown_s: Annotated[float, Field(gt=0)] = 600.0
    max_retry_after_s: Annotated[float, Field(gt=0)] = 300.0
    half_open_probes: Annotated[int, Field(ge=1)] = 1
    probe_successes: Annotated[int, Field(ge=1)] = 1
    probe_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    ramp_s: Annotated[float, Field(ge=0)] = 30.0
    ramp_start_fraction: Annotated[float, Field(gt=0, le=1)] = 0.1


class ResilienceConfig(StrictModel):
    """Live state, breakers, retries. Defaults follow the field (LiteLLM/Envoy semantics)."""

    window_s: Annotated[float, Field(gt=0)] = 60.0  # rolling window of latency and error stats
    min_latency_samples: Annotated[int, Field(ge=1)] = 10
    breaker: BreakerSettings = BreakerSettings()
    # Per error class overrides: {timeout: {retry: false}, auth: {cooldown_s: 60}}; flags are
    # retry, counts_against_health, cooldown, fallback (none|next|larger_context), cooldown_s.
    error_classes: dict[str, dict[str, Any]] = {}
    max_retries: Annotated[int, Field(ge=0, le=5)] = 2  # per deployment, same request
    backoff_base_s: Annotated[float, Field(gt=0)] = 0.1
    backoff_max_s: Annotated[float, Field(gt=0)] = 5.0
    min_useful_attempt_s: Annotated[float, Field(gt=0)] = 0.05
    retry_budget_ratio: Annotated[float, Field(ge=0)] = 0.2  # retries+hedges per request, per provider
    retry_budget_min_per_s: Annotated[float, Field(ge=0)] = 1.0
    # An attempt still unanswered after this multiple of its deployment's recent P95 latency is
    # given up as a timeout (and counts against health) before attempt_timeout_s fires.
    stuck_after_p95_multiple: Annotated[float, Field(ge=1)] | None = 4.0
    stuck_min_s: Annotated[float, Field(gt=0)] = 1.0


class ClassifierSettings(StrictModel):
    keywords: dict[Literal["retrieval", "creative", "reasoning", "extraction", "code"], list[str]] = {}
    replace_builtin: bool = False
