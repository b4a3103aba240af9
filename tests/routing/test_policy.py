"""Policy validation happens on construction, so bad config fails at load."""

from __future__ import annotations

import pytest

from router_service.routing.policy import HedgeConfig, Policy


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"strategy": "fastest"}, "policy 'p': strategy 'fastest': unknown fastest"),
        ({"strategy": "round_robin>cost"}, "policy 'p': .*must come last"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
    ],
)
def test_invalid_policies_name_the_policy_and_the_problem(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy("p", **fields)  # type: ignore[arg-type]


def test_empty_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="name"):
        Policy("")


@pytest.mark.parametrize(
    "fields",
    [{"max_hedges": -1}, {"min_delay_s": 2.0, "max_delay_s": 1.0}, {"min_delay_s": -1.0}],
)
def test_invalid_hedge_settings(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="hedge"):
        HedgeConfig(**fields)  # type: ignore[arg-type]


def test_defaults_match_the_lead_settings_mapping() -> None:
    policy = Policy(name="default", models=("a",), strategy="priority", max_attempts=3)
    assert (policy.hedge.enabled, policy.min_quality, policy.regions) == (False, None, frozenset())
