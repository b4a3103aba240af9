"""Compiled policies: candidate tables per selection, policy exclusions, identity memo."""

from __future__ import annotations

import pytest

from router_service.domain import ModelSelection
from router_service.routing.compiled import ALIAS, PINNED, compiled_policy
from router_service.routing.policy import Policy
from tests.routing.factories import catalog, deployment

CAT = catalog(
    deployment("a/x", region="us"),
    deployment("b/x", region="eu"),
    deployment("c/y", region="eu"),
    aliases={"both": ("y", "x")},
)


def test_policy_table_and_label() -> None:
    compiled = compiled_policy(CAT, Policy("p", models=("y", "x", "b/x"), strategy="cost"))
    table, label = compiled.candidates(ModelSelection())
    assert table.keys == ("c/y", "a/x", "b/x")  # listed order, each deployment once
    assert label == "cost>round_robin"


def test_pin_and_alias_tables_are_built_once_and_reused() -> None:
    compiled = compiled_policy(CAT, Policy("p"))
    pinned, label = compiled.candidates(ModelSelection(model="y"))
    assert (pinned.keys, pinned.pinned_count, label) == (("c/y", "a/x", "b/x"), 1, PINNED)
    assert compiled.candidates(ModelSelection(model="y"))[0] is pinned
    alias, label = compiled.candidates(ModelSelection(alias="both"))
    assert (alias.keys, alias.pinned_count, label) == (("c/y", "a/x", "b/x"), 0, ALIAS)


def test_policy_exclusions_apply_to_every_table() -> None:
    compiled = compiled_policy(
        CAT, Policy("eu", regions=frozenset({"eu"}), denied_providers=frozenset({"c"}))
    )
    table, _ = compiled.candidates(ModelSelection(model="a/x", disable_fallback=True))
    assert table.static_reasons == ("region 'us' not in policy 'eu' regions (eu)",)
    table, _ = compiled.candidates(ModelSelection())
    assert table.static_reasons[2] == "provider 'c' denied by policy 'eu'"


def test_unknown_model_in_the_policy() -> None:
    with pytest.raises(ValueError, match="policy 'p': unknown model 'z'"):
        compiled_policy(CAT, Policy("p", models=("z",)))
