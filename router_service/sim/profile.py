"""How a simulated model behaves, and the per-request draw of what happens next.

Standard library only and free of I/O, so tests can check the fault and latency distributions
exactly with a seeded `random.Random`. The HTTP server (`server.py`) owns the live state and the
random generator; this module only decides.

Latency is lognormal, fitted to two quantiles: the median is `latency_ms_p50` and the 99th
percentile is `latency_ms_p99`. For a unary request it is the whole response time; for a stream it
is the time to the first chunk, and `token_interval_ms` then separates the content chunks.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

# z-score of the 99th percentile of the standard normal distribution.
_Z_P99 = 2.3263478740408408
DEFAULT_QUALITY = 0.7
DEFAULT_CONTEXT_WINDOW = 128_000


class Outcome(enum.Enum):
    """What one simulated request does. Values are the names used in stats and config."""

    OK = "ok"
    ERROR = "error"  # HTTP 500 with an OpenAI-style error body
    RATE_LIMITED = "rate_limited"  # HTTP 429 with Retry-After
    HANG = "hang"  # no answer until the client disconnects
    CUT_STREAM = "cut_stream"  # the body stops mid-way and the connection closes
    MALFORMED = "malformed"  # HTTP 200 whose body is not valid JSON / SSE


_RATE_FIELDS: tuple[tuple[str, Outcome], ...] = (
    ("error_rate", Outcome.ERROR),
    ("rate_limit_rate", Outcome.RATE_LIMITED),
    ("hang_rate", Outcome.HANG),
    ("cut_stream_rate", Outcome.CUT_STREAM),
    ("malformed_rate", Outcome.MALFORMED),
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """The draw for one request: its outcome and how long to wait before answering."""

    outcome: Outcome
    latency_s: float


@dataclass(frozen=True, slots=True)
class SimProfile:
    """Per-model behaviour of the simulated provider.

    Rates are independent probabilities of mutually exclusive outcomes, so they must sum to at
    most 1; the rest is OK. `latency_ms_p50 == 0` means no delay at all (the benchmark setting);
    `latency_ms_p99` of 0 or equal to p50 means a constant delay of p50.
    """

    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0
    token_interval_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    hang_rate: float = 0.0
    cut_stream_rate: float = 0.0
    malformed_rate: float = 0.0
    # Answer quality per task name (see domain.TaskType); tasks not listed get default_quality.
    quality: Mapping[str, float] = field(default_factory=dict)
    default_quality: float = DEFAULT_QUALITY
    answer_tokens: int = 16
    cached_prompt_fraction: float = 0.0
    context_window: int = DEFAULT_CONTEXT_WINDOW
    # Derived once here so that decide() does no logarithms per request.
    _mu: float = field(init=False, repr=False, compare=False, default=0.0)
    _sigma: float = field(init=False, repr=False, compare=False, default=0.0)
    _thresholds: tuple[tuple[float, Outcome], ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "quality", MappingProxyType(dict(self.quality)))
        mu, sigma = lognormal_params(self.latency_ms_p50, self.latency_ms_p99)
        object.__setattr__(self, "_mu", mu)
        object.__setattr__(self, "_sigma", sigma)
        object.__setattr__(self, "_thresholds", _cumulative_thresholds(self))

    def quality_for(self, task: str) -> float:
        return self.quality.get(task, self.default_quality)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible fields (for /admin responses and docs)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out


def _validate(p: SimProfile) -> None:
    """Reject impossible profiles early, naming the field, so config and admin errors are clear."""
    for name, _ in _RATE_FIELDS:
        _check_unit(name, getattr(p, name))
    _check_unit("cached_prompt_fraction", p.cached_prompt_fraction)
    _check_unit("default_quality", p.default_quality)
    for task, q in p.quality.items():
        _check_unit(f"quality.{task}", q)
    total = sum(getattr(p, name) for name, _ in _RATE_FIELDS)
    if total > 1.0 + 1e-9:
        raise ValueError(f"fault rates sum to {total:g}, which is more than 1")
    for name in ("latency_ms_p50", "latency_ms_p99", "token_interval_ms", "retry_after_s"):
        if getattr(p, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(p, name)}")
    if 0 < p.latency_ms_p99 < p.latency_ms_p50:
        raise ValueError(f"latency_ms_p99 ({p.latency_ms_p99}) is below latency_ms_p50 ({p.latency_ms_p50})")
    if p.answer_tokens < 1:
        raise ValueError(f"answer_tokens must be >= 1, got {p.answer_tokens}")
    if p.context_window < 1:
        raise ValueError(f"context_window must be >= 1, got {p.context_window}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def lognormal_params(p50_ms: float, p99_ms: float) -> tuple[float, float]:
    """(mu, sigma) of ln(latency in ms) such that the median is p50 and the 99th percentile p99."""
    if p50_ms <= 0:
        return 0.0, 0.0
    mu = math.log(p50_ms)
    if p99_ms <= p50_ms:
        return mu, 0.0
    return mu, math.log(p99_ms / p50_ms) / _Z_P99


def _cumulative_thresholds(p: SimProfile) -> tuple[tuple[float, Outcome], ...]:
    """Upper bounds of each fault outcome on [0, 1); one uniform draw then picks the outcome."""
    out: list[tuple[float, Outcome]] = []
    acc = 0.0
    for name, outcome in _RATE_FIELDS:
        rate = getattr(p, name)
        if rate > 0:
            acc += rate
            out.append((acc, outcome))
    return tuple(out)


def decide(profile: SimProfile, rng: random.Random) -> Behaviour:
    """Draw the outcome and latency of one request.

    A profile without faults and without latency consumes no randomness, which keeps the
    benchmark path to a couple of attribute reads.
    """
    outcome = _draw_outcome(profile, rng)
    if outcome is Outcome.HANG or profile.latency_ms_p50 <= 0:
        return Behaviour(outcome, 0.0)
    return Behaviour(outcome, _draw_latency_ms(profile, rng) / 1000.0)


def _draw_outcome(profile: SimProfile, rng: random.Random) -> Outcome:
    if not profile._thresholds:
        return Outcome.OK
    u = rng.random()
    for upper, outcome in profile._thresholds:
        if u < upper:
            return outcome
    return Outcome.OK


def _draw_latency_ms(profile: SimProfile, rng: random.Random) -> float:
    if profile._sigma == 0.0:
        return profile.latency_ms_p50
    return rng.lognormvariate(profile._mu, profile._sigma)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """A whole simulated provider: the default profile, per-model overrides and the RNG seed.

    A request for a model not in `models` uses `default`. `seed=None` draws from OS entropy.
    """

    default: SimProfile = field(default_factory=SimProfile)
    models: Mapping[str, SimProfile] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    def profile_for(self, model: str) -> SimProfile:
        return self.models.get(model, self.default)


class ProfileTable:
    """The live, mutable view of a SimConfig that /admin/profile edits during fault drills.

    Profiles stay immutable; an update swaps a whole profile, so a request that already read
    its profile finishes under the old behaviour.
    """

    def __init__(self, config: SimConfig) -> None:
        self._initial = config
        self._default = config.default
        self._models: dict[str, SimProfile] = dict(config.models)

    def get(self, model: str) -> SimProfile:
        return self._models.get(model, self._default)

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def set_default(self, profile: SimProfile) -> None:
        self._default = profile

    def set_model(self, model: str, profile: SimProfile) -> None:
        self._models[model] = profile

    def items(self) -> list[tuple[str, SimProfile]]:
        return sorted(self._models.items())

    @property
    def default(self) -> SimProfile:
        return self._default

    def reset(self, model: str | None = None) -> None:
        """Back to the startup config: one model, or everything when `model` is None."""
        if model is None:
            self._default = self._initial.default
            self._models = dict(self._initial.models)
        elif model in self._initial.models:
            self._models[model] = self._initial.models[model]
        else:
            self._models.pop(model, None)
