"""Access rules of an identity over requests: pure, a small catalog."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.quality import access as quality_access
from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import ChatRequest, DataSensitivity, Message, ModelSelection, Role, RoutingHints
from router_service.errors import PermissionDeniedError
from router_service.identity.access import allowed_models, authorize, may_score, require_scope
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


# --- who may score a request (Feedback) ---------------------------------------------------------

OWNER = Identity(key_id="k_owner", team="search", customer="acme")
FEEDBACK_ONLY = frozenset({Scope.FEEDBACK})


@pytest.mark.parametrize(
    ("scorer", "allowed"),
    [
        (OWNER, True),  # the key that made it
        (Identity(key_id="k_mate", team="search", customer="acme"), True),  # same team and customer
        (Identity(key_id="k_ads", team="ads", customer="acme"), False),  # another team
        (Identity(key_id="k_mate2", team="search", customer="globex"), False),  # another customer
        (Identity(key_id="k_none", team="", customer="acme"), False),  # no team is nobody's team
        (Identity(key_id="k_eval", team="qa", customer="acme", scopes=frozenset({Scope.EVALUATE})), True),
        (Identity(key_id="k_eval2", team="qa", customer="globex", scopes=frozenset({Scope.EVALUATE})), False),
        (UNRESTRICTED, True),  # auth off: as before keys existed
    ],
)
def test_who_may_score_a_request(scorer: Identity, allowed: bool) -> None:
    assert may_score(scorer, OWNER) is allowed


def test_a_request_made_without_a_key_belongs_to_nobody() -> None:
    assert may_score(Identity(key_id="k_any", team="ads", customer="globex"), UNRESTRICTED)


_NAMES = st.sampled_from(["", "a", "b"])


@settings(max_examples=300, deadline=None)
@given(
    scorer=st.tuples(_NAMES, _NAMES, _NAMES),
    owner=st.tuples(_NAMES, _NAMES, _NAMES),
    evaluator=st.booleans(),
)
def test_the_quality_consumer_applies_the_same_rule(
    scorer: tuple[str, str, str], owner: tuple[str, str, str], evaluator: bool
) -> None:
    """consumers/quality/access.py restates the rule on event envelopes: they must agree."""
    scopes = FEEDBACK_ONLY | ({Scope.EVALUATE} if evaluator else set())
    router = may_score(
        Identity(key_id=scorer[0], team=scorer[1], customer=scorer[2], scopes=scopes),
        Identity(key_id=owner[0], team=owner[1], customer=owner[2]),
    )
    # The router marks an evaluator only when it has a key (app.py _feedback_publisher).
    consumer = quality_access.may_score(
        quality_access.Party(*scorer), evaluator and bool(scorer[0]), quality_access.Party(*owner)
    )
    assert router == consumer


def test_a_region_restriction_becomes_a_deployment_allow_list() -> None:
    catalog = Catalog(
        deployments=tuple(
            Deployment(
                provider=p,
                model="m",
                upstream_model="m",
                price=PRICE,
                context_window=8000,
                max_output_tokens=1000,
                capabilities=frozenset(),
                region=r,
            )
            for p, r in [("eu1", "eu"), ("us1", "us"), ("eu2", "eu")]
        ),
        aliases={},
    )
    eu = Identity(key_id="k", allowed_regions=frozenset({"eu"}))
    assert allowed_models(eu, catalog) == frozenset({"eu1/m", "eu2/m"})
    eu_one = Identity(key_id="k", allowed_regions=frozenset({"eu"}), allowed_models=frozenset({"eu2/m"}))
    assert allowed_models(eu_one, catalog) == frozenset({"eu2/m"})
    assert allowed_models(Identity(key_id="k"), catalog) is None
