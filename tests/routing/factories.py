"""Small builders for catalogs, policies and requests used across the routing tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import ChatRequest, Message, ModelSelection, Role, RoutingHints, TaskType
from router_service.routing.signals import AlwaysHealthy

HEALTHY = AlwaysHealthy()


def deployment(
    key: str,
    *,
    input_nanos: int = 1_000_000_000,
    output_nanos: int = 4_000_000_000,
    cached_nanos: int = 100_000_000,
    **fields: Any,
) -> Deployment:
    """A deployment from "provider/model" with sensible defaults; any Deployment field overrides."""
    provider, model = key.split("/")
    values: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "upstream_model": model,
        "price": Price(input_nanos, output_nanos, cached_nanos),
        "context_window": 128_000,
        "max_output_tokens": 16_384,
        "capabilities": frozenset({"tools", "json", "streaming"}),
    }
    values.update(fields)
    return Deployment(**values)


def catalog(*deployments: Deployment, aliases: Mapping[str, tuple[str, ...]] | None = None) -> Catalog:
    return Catalog(deployments=tuple(deployments), aliases=dict(aliases or {}))


def request(
    text: str = "hello",
    *,
    task: TaskType | None = TaskType.CHAT,
    model: str = "",
    alias: str = "",
    disable_fallback: bool = False,
    messages: Iterable[Message] | None = None,
    **request_fields: Any,
) -> ChatRequest:
    hints = request_fields.pop("hints", None) or RoutingHints(task_type=task)
    return ChatRequest(
        messages=tuple(messages) if messages is not None else (Message(Role.USER, text),),
        selection=ModelSelection(model=model, alias=alias, disable_fallback=disable_fallback),
        hints=hints,
        **request_fields,
    )


class FixedLatency:
    """LiveSignals with fixed P95s; keys not listed have no data."""

    def __init__(
        self,
        p95: Mapping[str, float] | None = None,
        ttft: Mapping[str, float] | None = None,
        ramp: Mapping[str, float] | None = None,
    ) -> None:
        self._p95 = dict(p95 or {})
        self._ttft = dict(ttft or {})
        self._ramp = dict(ramp or {})

    def latency_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        return [self._p95.get(key) for key in keys]

    def ttft_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        return [self._ttft.get(key) for key in keys]

    def ramping(self, now: float) -> Mapping[str, float]:
        return {key: fraction for key, fraction in self._ramp.items() if fraction < 1.0}


class Unavailable:
    """HealthView excluding the listed keys with the given reasons."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)

    def unavailable_reason(self, key: str, now: float) -> str | None:
        return self.reasons.get(key)


class BulkUnavailable(Unavailable):
    """The same, also offering the planner's once-per-request bulk query."""

    def unavailable_reasons(self, now: float) -> Mapping[str, str]:
        return self.reasons


class FixedQuality:
    def __init__(self, scores: Mapping[str, float]) -> None:
        self._scores = dict(scores)

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        return self._scores.get(key, prior)
