"""Routing policy as a pure function: (request, catalog, policy, health, now) -> RouteDecision.

No I/O, no clocks, no randomness of its own: everything that varies comes in as an argument,
so a decision is reproducible in a unit test and cheap on the request path.

Steps: resolve the candidate set (pin, alias, or the policy's models), filter with a reason for
every exclusion, then order the eligible ones with the policy's strategy.
"""

from __future__ import annotations

from typing import Protocol

from router_service.catalog import Catalog, Deployment
from router_service.domain import CandidateView, ChatRequest, RouteDecision, TaskType
from router_service.errors import NoEligibleCandidateError, UnknownModelError
from router_service.routing.policy import Policy


class HealthView(Protocol):
    def unavailable_reason(self, key: str, now: float) -> str | None:
        """Why deployment `key` must not be used now, or None if it may."""
        ...


class AlwaysHealthy:
    def unavailable_reason(self, key: str, now: float) -> str | None:
        return None


def plan(
    request: ChatRequest, catalog: Catalog, policy: Policy, health: HealthView, now: float
) -> RouteDecision:
    deployments, strategy = _candidate_deployments(request, catalog, policy)
    views = [_view(d, request, health, now) for d in deployments]
    eligible = [v for v in views if v.eligible]
    if not eligible:
        raise NoEligibleCandidateError({v.key: v.exclusion_reason for v in views})
    chain = tuple(v.key for v in eligible)
    if request.selection.disable_fallback:
        chain = chain[:1]
    task = request.hints.task_type or TaskType.CHAT
    return RouteDecision(
        policy=policy.name,
        strategy=strategy,
        task_type=task,
        chain=chain[: policy.max_attempts],
        candidates=tuple(views),
    )


def _candidate_deployments(
    request: ChatRequest, catalog: Catalog, policy: Policy
) -> tuple[list[Deployment], str]:
    selection = request.selection
    if selection.model:
        pinned = catalog.resolve_model(selection.model)
        if not pinned:
            raise UnknownModelError("model", selection.model)
        rest = [] if selection.disable_fallback else _policy_deployments(catalog, policy)
        return _dedupe([*pinned, *rest]), "pinned"
    if selection.alias:
        names = catalog.aliases.get(selection.alias)
        if names is None:
            raise UnknownModelError("alias", selection.alias)
        return _dedupe([d for name in names for d in catalog.resolve_model(name)]), "alias"
    return _policy_deployments(catalog, policy), policy.strategy


def _policy_deployments(catalog: Catalog, policy: Policy) -> list[Deployment]:
    if not policy.models:
        return list(catalog.deployments)
    return [d for name in policy.models for d in catalog.resolve_model(name)]


def _dedupe(deployments: list[Deployment]) -> list[Deployment]:
    seen: set[str] = set()
    out = []
    for d in deployments:
        if d.key not in seen:
            seen.add(d.key)
            out.append(d)
    return out


def _view(d: Deployment, request: ChatRequest, health: HealthView, now: float) -> CandidateView:
    reason = _exclusion(d, request, health, now)
    return CandidateView(
        provider=d.provider, model=d.model, eligible=reason is None, exclusion_reason=reason or ""
    )


def _exclusion(d: Deployment, request: ChatRequest, health: HealthView, now: float) -> str | None:
    hints = request.hints
    if hints.allowed_providers and d.provider not in hints.allowed_providers:
        return "provider not in allowed_providers"
    if d.provider in hints.denied_providers:
        return "provider in denied_providers"
    if request.tools and "tools" not in d.capabilities:
        return "model does not support tools"
    return health.unavailable_reason(d.key, now)
