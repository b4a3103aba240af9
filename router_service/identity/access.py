"""What an identity may ask for: checked before routing, pure.

A choice the caller makes explicitly (a pinned model or deployment, an alias, a policy) that the
key does not allow is refused with PERMISSION_DENIED naming it. What the key allows then narrows
the request: its default policy when the request names none, its sensitivity floor, and its model
allow-list, which routing applies as a filter with a reason per excluded candidate (`Route`).
"""

from __future__ import annotations

import dataclasses

from router_service.catalog import Catalog
from router_service.domain import ChatRequest, DataSensitivity
from router_service.errors import PermissionDeniedError
from router_service.identity.model import Identity, Scope
from router_service.routing.key_allow_list import KeyAllowList

_SENSITIVITY_ORDER = {s: i for i, s in enumerate(DataSensitivity)}


def require_scope(identity: Identity, scope: Scope) -> None:
    if not identity.may(scope):
        raise PermissionDeniedError(
            f"API key {identity.key_id or '(anonymous)'} lacks the {scope.value!r} scope", scope=scope.value
        )


def authorize(identity: Identity, request: ChatRequest, catalog: Catalog, default_policy: str) -> ChatRequest:
    """`request` as this identity may send it; PermissionDeniedError for an explicit choice the
    identity may not make. `default_policy`: the router's, used when neither names one."""
    selection, hints = request.selection, request.hints
    if selection.model:
        deployments = catalog.resolve_model(selection.model)
        if deployments and not any(identity.may_use_model(d.model, d.key) for d in deployments):
            raise _denied(identity, "model", selection.model)
    if selection.alias and not identity.may_use_alias(selection.alias):
        raise _denied(identity, "alias", selection.alias)
    policy = hints.policy or identity.default_policy  # "" keeps the router's default
    if not identity.may_use_policy(policy or default_policy):
        raise _denied(identity, "policy", policy or default_policy)
    sensitivity = _stricter(hints.data_sensitivity, identity.min_sensitivity)
    if policy == hints.policy and sensitivity is hints.data_sensitivity:
        return request  # the common case: no copy (dataclasses.replace is ~7 us a call)
    return dataclasses.replace(
        request, hints=dataclasses.replace(hints, policy=policy, data_sensitivity=sensitivity)
    )


def allowed_models(identity: Identity, catalog: Catalog | None = None) -> frozenset[str] | None:
    """The routing filter's allow-list (catalog model names or deployment keys); None: any. With
    a region restriction (and a catalog), the deployment keys both lists admit, as a
    KeyAllowList that keeps the two rules for the filter's exclusion reasons."""
    if not identity.allowed_regions or catalog is None:
        return identity.allowed_models or None
    return KeyAllowList(
        (
            d.key
            for d in catalog.deployments
            if identity.may_use_region(d.region) and identity.may_use_model(d.model, d.key)
        ),
        models=identity.allowed_models,
        regions=identity.allowed_regions,
    )


def may_score(scorer: Identity, owner: Identity) -> bool:
    """Whether `scorer` may give feedback on a request `owner` made: the key that made it, a key
    of the same team and customer, or an evaluator (`evaluate` scope) of the same customer.

    An empty key id on either side is auth `off` (UNRESTRICTED): a request made without a key
    belongs to nobody, and a router that checks no keys trusts every scorer, as before keys
    existed. consumers/quality/join.py applies the same rule to the events (it cannot import
    this module); tests/identity/test_access.py holds the two equal.
    """
    if not scorer.key_id or not owner.key_id or scorer.key_id == owner.key_id:
        return True
    if scorer.customer != owner.customer:
        return False
    return (scorer.team != "" and scorer.team == owner.team) or scorer.may(Scope.EVALUATE)


def _stricter(declared: DataSensitivity, floor: DataSensitivity | None) -> DataSensitivity:
    if floor is None or _SENSITIVITY_ORDER[declared] >= _SENSITIVITY_ORDER[floor]:
        return declared
    return floor


def _denied(identity: Identity, kind: str, name: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"API key {identity.key_id or '(anonymous)'} may not use {kind} {name!r}",
        resource_kind=kind,
        resource=name,
    )
