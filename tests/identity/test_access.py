"""Access rules of an identity over requests: pure, a small catalog."""

from __future__ import annotations

import pytest

from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import ChatRequest, DataSensitivity, Message, ModelSelection, Role, RoutingHints
from router_service.errors import PermissionDeniedError
from router_service.identity.access import allowed_models, authorize, require_scope
from router_service.identity.model import UNRESTRICTED, Identity, Scope

PRICE = Price(1, 1, 1)
CATALOG = Catalog(
    deployments=tuple(
        Deployment(
            provider=p,
            model=m,
            upstream_model=m,
            price=PRICE,
            context_window=8000,
            max_output_tokens=1000,
            capabilities=frozenset(),
        )
        for p, m in [("a", "cheap"), ("b", "cheap"), ("a", "premium")]
    ),
    aliases={"fast": ("cheap",)},
)
CHEAP_ONLY = Identity(
    key_id="k_cheap",
    allowed_models=frozenset({"cheap"}),
    allowed_aliases=frozenset({"fast"}),
    allowed_policies=frozenset({"default"}),
)


def request(
    model: str = "", alias: str = "", policy: str = "", sensitivity: DataSensitivity = DataSensitivity.PUBLIC
) -> ChatRequest:
    return ChatRequest(
        messages=(Message(Role.USER, "hi"),),
        selection=ModelSelection(model=model, alias=alias),
        hints=RoutingHints(policy=policy, data_sensitivity=sensitivity),
    )


@pytest.mark.parametrize(
    ("req", "kind", "name"),
    [
        (request(model="premium"), "model", "premium"),
        (request(model="a/premium"), "model", "a/premium"),
        (request(alias="best"), "alias", "best"),
        (request(policy="frontier"), "policy", "frontier"),
    ],
)
def test_explicit_choices_outside_the_key_are_denied_naming_them(
    req: ChatRequest, kind: str, name: str
) -> None:
    with pytest.raises(PermissionDeniedError) as err:
        authorize(CHEAP_ONLY, req, CATALOG, "default")
    assert (err.value.resource_kind, err.value.resource) == (kind, name)
    assert "k_cheap" in str(err.value)


@pytest.mark.parametrize("model", ["cheap", "a/cheap", "b/cheap", ""])
def test_allowed_choices_pass(model: str) -> None:
    assert authorize(CHEAP_ONLY, request(model=model), CATALOG, "default").selection.model == model


def test_a_deployment_allow_list_admits_its_model_pin() -> None:
    ident = Identity(key_id="k", allowed_models=frozenset({"b/cheap"}))
    authorize(ident, request(model="cheap"), CATALOG, "default")
    with pytest.raises(PermissionDeniedError):
        authorize(ident, request(model="a/cheap"), CATALOG, "default")


def test_the_routers_default_policy_needs_the_key_too() -> None:
    ident = Identity(key_id="k", allowed_policies=frozenset({"cheap"}))
    with pytest.raises(PermissionDeniedError, match="policy 'default'"):
        authorize(ident, request(), CATALOG, "default")
    assert (
        authorize(
            Identity(key_id="k", default_policy="cheap", allowed_policies=frozenset({"cheap"})),
            request(),
            CATALOG,
            "default",
        ).hints.policy
        == "cheap"
    )


def test_the_keys_default_policy_applies_only_when_the_request_names_none() -> None:
    ident = Identity(key_id="k", default_policy="cheap")
    assert authorize(ident, request(), CATALOG, "default").hints.policy == "cheap"
    assert authorize(ident, request(policy="other"), CATALOG, "default").hints.policy == "other"


@pytest.mark.parametrize(
    ("declared", "floor", "expected"),
    [
        (DataSensitivity.PUBLIC, DataSensitivity.RESTRICTED, DataSensitivity.RESTRICTED),
        (DataSensitivity.RESTRICTED, DataSensitivity.INTERNAL, DataSensitivity.RESTRICTED),
        (DataSensitivity.INTERNAL, None, DataSensitivity.INTERNAL),
    ],
)
def test_the_keys_sensitivity_floor_raises_never_lowers(
    declared: DataSensitivity, floor: DataSensitivity | None, expected: DataSensitivity
) -> None:
    ident = Identity(key_id="k", min_sensitivity=floor)
    assert (
        authorize(ident, request(sensitivity=declared), CATALOG, "default").hints.data_sensitivity is expected
    )


def test_scopes() -> None:
    require_scope(Identity(key_id="k"), Scope.COMPLETE)
    with pytest.raises(PermissionDeniedError) as err:
        require_scope(Identity(key_id="k"), Scope.FEEDBACK)
    assert err.value.scope == "feedback"
    assert not UNRESTRICTED.may(Scope.ADMIN)
    assert allowed_models(UNRESTRICTED) is None
    assert allowed_models(CHEAP_ONLY) == frozenset({"cheap"})
