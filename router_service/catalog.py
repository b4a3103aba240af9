"""The model catalog: deployments (a model served by a provider), their prices and traits.

Built once from validated settings (`settings.load_config`) and read-only on the request path.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from router_service.domain import DataSensitivity, TaskType, Usage

NANOS_PER_USD = 1_000_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are per million tokens
# The quality a deployment with no configured prior at all ranks with: the middle of [0, 1].
UNKNOWN_QUALITY = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """Nano-USD per million tokens, per token type (exact integers)."""

    input_nanos_per_mtok: int
    output_nanos_per_mtok: int
    cached_input_nanos_per_mtok: int

    def cost_nanos(self, usage: Usage) -> int:
        """Exact cost of `usage` in nano-USD.

        The sum is taken in nano-USD x tokens (exact), and rounded up to a whole nano-USD once per
        call, so a provider is never under-accounted and totals are reproducible to the nano.
        """
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        scaled = (
            (usage.input_tokens - cached) * self.input_nanos_per_mtok
            + cached * self.cached_input_nanos_per_mtok
            + usage.output_tokens * self.output_nanos_per_mtok
        )
        return -(-scaled // TOKENS_PER_PRICE_UNIT)  # ceiling division


@dataclass(frozen=True, slots=True)
class Deployment:
    """One model served by one provider."""

    provider: str
    model: str  # catalog model name callers use
    upstream_model: str  # the provider's own name for it
    price: Price
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]  # e.g. {"tools", "json", "streaming"}
    # Highest data sensitivity this deployment may receive.
    max_sensitivity: DataSensitivity = DataSensitivity.INTERNAL
    region: str = ""
    # Configured prior quality per task type in [0, 1]; the feedback loop refines it.
    quality: Mapping[TaskType, float] = field(default_factory=dict)
    # The prior for tasks `quality` does not list; None: the mean of `quality` (see quality_for).
    default_quality: float | None = None
    # Task types this deployment is fit for; empty means every task.
    tasks: frozenset[TaskType] = frozenset()
    # Expected share of a long prompt's input tokens billed at the cached-input price (providers
    # that cache prompt prefixes automatically); 0 means cost estimates assume no cache hits.
    expected_cached_fraction: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def quality_known(self) -> bool:
        """Whether any prior is configured. A missing prior means "unknown", not "bad": a
        deployment with none is never excluded by a quality floor on its priors alone."""
        return bool(self.quality) or self.default_quality is not None

    def quality_for(self, task: TaskType) -> float:
        """The prior estimate for `task`: the configured prior; else `default_quality`; else the
        mean of the priors configured for other tasks; else a neutral UNKNOWN_QUALITY."""
        prior = self.quality.get(task)
        if prior is not None:
            return prior
        if self.default_quality is not None:
            return self.default_quality
        if self.quality:
            return sum(self.quality.values()) / len(self.quality)
        return UNKNOWN_QUALITY


@dataclass(frozen=True, slots=True)
class Catalog:
    deployments: tuple[Deployment, ...]
    aliases: Mapping[str, tuple[str, ...]]  # alias -> ordered catalog model names
    by_key: Mapping[str, Deployment] = field(init=False)
    by_model: Mapping[str, tuple[Deployment, ...]] = field(init=False)

    def __post_init__(self) -> None:
        by_model: dict[str, list[Deployment]] = {}
        for d in self.deployments:
            by_model.setdefault(d.model, []).append(d)
        object.__setattr__(self, "by_key", MappingProxyType({d.key: d for d in self.deployments}))
        object.__setattr__(self, "by_model", MappingProxyType({m: tuple(ds) for m, ds in by_model.items()}))

    def resolve_model(self, name: str) -> tuple[Deployment, ...]:
        """Deployments for a pin: "model" (all its deployments) or "provider/model" (one)."""
        if name in self.by_key:
            return (self.by_key[name],)
        return self.by_model.get(name, ())
