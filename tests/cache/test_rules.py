"""What may be cached: opt-in per policy or key, deterministic-enough calls, the caller's directives."""

from __future__ import annotations

import dataclasses

import pytest

from router_service.cache.rules import Access, CacheRules, Directives, Skip, access, fresh
from router_service.domain import ChatRequest, GenerationParams, ToolSpec
from router_service.identity.model import UNRESTRICTED
from tests.cache.helpers import ACME_SEARCH, request

POLICY_ON = CacheRules(policies=frozenset({"default"}))


def with_params(**params: object) -> ChatRequest:
    return dataclasses.replace(request(), params=GenerationParams(**params))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "policy", "expected"),
    [
        (CacheRules(), "default", Skip.NOT_OPTED_IN),
        (POLICY_ON, "default", None),
        (POLICY_ON, "cheap", Skip.NOT_OPTED_IN),
        (CacheRules(policies=frozenset({"*"})), "cheap", None),
        (CacheRules(keys=frozenset({"k_acme_1"})), "cheap", None),
        (CacheRules(keys=frozenset({"k_other"})), "cheap", Skip.NOT_OPTED_IN),
        (CacheRules(keys=frozenset({"*"})), "cheap", None),
    ],
)
def test_opt_in_is_per_policy_or_per_key(rules: CacheRules, policy: str, expected: Skip | None) -> None:
    assert access(rules, ACME_SEARCH, request(), policy, Directives()).skip is expected


def test_an_anonymous_caller_is_not_opted_in_by_an_empty_key_id() -> None:
    rules = CacheRules(keys=frozenset({""}))
    assert access(rules, UNRESTRICTED, request(), "default", Directives()).skip is Skip.NOT_OPTED_IN


@pytest.mark.parametrize(
    ("params", "cacheable"),
    [
        ({"temperature": 0.0}, True),
        ({"temperature": 0.7, "seed": 42}, True),
        ({"seed": 0}, True),
        ({"temperature": 0.7}, False),
        ({}, False),  # the provider's default temperature is not 0
    ],
)
def test_only_deterministic_enough_calls_by_default(params: dict[str, object], cacheable: bool) -> None:
    r = with_params(**params)
    skip = access(POLICY_ON, ACME_SEARCH, r, "default", Directives()).skip
    assert skip is (None if cacheable else Skip.NONDETERMINISTIC)
    relaxed = dataclasses.replace(POLICY_ON, cache_nondeterministic=True)
    assert access(relaxed, ACME_SEARCH, r, "default", Directives()).skip is None


def test_requests_with_tools_only_when_configured() -> None:
    r = dataclasses.replace(request(), tools=(ToolSpec("search"),))
    assert access(POLICY_ON, ACME_SEARCH, r, "default", Directives()).skip is Skip.TOOLS
    relaxed = dataclasses.replace(POLICY_ON, cache_tools=True)
    assert access(relaxed, ACME_SEARCH, r, "default", Directives()).skip is None


@pytest.mark.parametrize(
    ("directives", "expected"),
    [
        (Directives(), Access(True, True)),
        (Directives(no_cache=True), Access(False, True)),
        (Directives(no_store=True), Access(True, False)),
        (Directives(no_cache=True, no_store=True), Access(False, False)),
        (Directives(max_age_s=0), Access(False, True)),
        (Directives(max_age_s=30), Access(True, True)),
    ],
)
def test_caller_directives(directives: Directives, expected: Access) -> None:
    assert access(POLICY_ON, ACME_SEARCH, request(), "default", directives) == expected


@pytest.mark.parametrize(
    ("age", "ttl", "max_age", "ok"),
    [
        (10.0, 60.0, None, True),
        (60.0, 60.0, None, True),
        (60.5, 60.0, None, False),
        (10.0, 60.0, 10.0, True),
        (10.5, 60.0, 10.0, False),
    ],
)
def test_freshness_is_the_ttl_and_the_callers_max_age(
    age: float, ttl: float, max_age: float | None, ok: bool
) -> None:
    assert fresh(age, ttl, Directives(max_age_s=max_age)) is ok
