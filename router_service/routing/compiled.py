"""A policy compiled against a catalog: the per-policy work done once instead of per request.

Compiling resolves the policy's model names to deployments, computes the policy's own
(request-independent) exclusions, lays the candidates out as a `CandidateTable` and builds the
strategy composition. Tables for pinned models and aliases are built on first use and kept (their
number is bounded by the catalog). `compiled_policy` memoizes by object identity, so callers keep
passing plain `Policy` and `Catalog` objects and the request path does no per-policy work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from router_service.catalog import Catalog, Deployment
from router_service.domain import ModelSelection
from router_service.errors import UnknownModelError
from router_service.routing.candidate import CandidateTable
from router_service.routing.policy import Policy
from router_service.routing.strategies import Composite, compose

PINNED = "pinned"
ALIAS = "alias"
_MAX_CACHED = 256


class CompiledPolicy:
    __slots__ = ("_tables", "catalog", "composite", "policy", "policy_deployments", "policy_table")

    def __init__(self, catalog: Catalog, policy: Policy) -> None:
        self.catalog = catalog
        self.policy = policy
        self.composite: Composite = compose(policy.strategy, policy.params)
        self.policy_deployments = _policy_deployments(catalog, policy)
        self.policy_table = self._table(self.policy_deployments)
        self._tables: dict[tuple[str, str, bool], tuple[CandidateTable, str]] = {}

    def candidates(self, selection: ModelSelection) -> tuple[CandidateTable, str]:
        """The candidate table for this selection, and the strategy label to report."""
        if not (selection.model or selection.alias):
            return self.policy_table, self.composite.label
        key = (selection.model, selection.alias, selection.disable_fallback)
        found = self._tables.get(key)
        if found is None:
            found = self._tables[key] = self._selection_table(selection)
        return found

    def _selection_table(self, selection: ModelSelection) -> tuple[CandidateTable, str]:
        if selection.model:
            pinned = self.catalog.resolve_model(selection.model)
            if not pinned:
                raise UnknownModelError("model", selection.model)
            rest = () if selection.disable_fallback else self.policy_deployments
            return self._table(_dedupe([*pinned, *rest]), pinned_count=len(pinned)), PINNED
        names = self.catalog.aliases.get(selection.alias)
        if names is None:
            raise UnknownModelError("alias", selection.alias)
        members = [d for name in names for d in self.catalog.resolve_model(name)]
        return self._table(_dedupe(members)), ALIAS

    def _table(self, deployments: Sequence[Deployment], pinned_count: int = 0) -> CandidateTable:
        reasons = [_policy_exclusion(d, self.policy) for d in deployments]
        return CandidateTable(deployments, reasons, pinned_count)


def _policy_deployments(catalog: Catalog, policy: Policy) -> list[Deployment]:
    if not policy.models:
        return list(catalog.deployments)
    out: list[Deployment] = []
    for name in policy.models:
        resolved = catalog.resolve_model(name)
        if not resolved:
            raise ValueError(f"policy {policy.name!r}: unknown model {name!r}")
        out.extend(resolved)
    return _dedupe(out)


def _policy_exclusion(deployment: Deployment, policy: Policy) -> str | None:
    name = policy.name
    if policy.allowed_providers and deployment.provider not in policy.allowed_providers:
        return f"provider {deployment.provider!r} not allowed by policy {name!r}"
    if deployment.provider in policy.denied_providers:
        return f"provider {deployment.provider!r} denied by policy {name!r}"
    if policy.regions and deployment.region not in policy.regions:
        allowed = ", ".join(sorted(policy.regions))
        return f"region {deployment.region or 'unknown'!r} not in policy {name!r} regions ({allowed})"
    return None


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


_K = TypeVar("_K", bound=_Keyed)


def _dedupe(items: Sequence[_K]) -> list[_K]:
    """First occurrence of each key, in order (a model may be listed by name and by key)."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            out.append(item)
    return out


_cache: dict[tuple[int, int], CompiledPolicy] = {}


def compiled_policy(catalog: Catalog, policy: Policy) -> CompiledPolicy:
    """The compiled form of (catalog, policy), built on first use and then reused.

    Keyed by identity (both are frozen, but hold unhashable mappings); the entry keeps both objects
    alive, so an id cannot be reused by a different object while its entry exists.
    """
    key = (id(catalog), id(policy))
    compiled = _cache.get(key)
    if compiled is None or compiled.catalog is not catalog or compiled.policy is not policy:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()  # config reloads replace objects; never let stale ones pile up
        compiled = _cache[key] = CompiledPolicy(catalog, policy)
    return compiled
