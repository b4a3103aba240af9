"""Every exclusion has a precise reason: one table row per filter, checked through `plan`."""

from __future__ import annotations

from typing import Any

import pytest

from router_service.catalog import Deployment
from router_service.domain import (
    DataSensitivity,
    GenerationParams,
    ResponseFormat,
    ResponseFormatType,
    RoutingHints,
    TaskType,
    ToolSpec,
)
from router_service.errors import NoEligibleCandidateError
from router_service.identity.access import allowed_models
from router_service.identity.model import Identity
from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from tests.routing.factories import (
    HEALTHY,
    FixedLatency,
    FixedQuality,
    Unavailable,
    catalog,
    deployment,
    request,
)

OPEN = Policy("open", strategy="priority")


def reasons_for(
    target: Deployment,
    policy: Policy = OPEN,
    context: RequestContext | None = None,
    **request_fields: Any,
) -> str:
    """The exclusion reason of `target`, routed next to an always-eligible control deployment."""
    control = deployment(
        "ctl/control",
        context_window=10_000_000,
        max_output_tokens=10_000_000,
        max_sensitivity=DataSensitivity.RESTRICTED,
        output_nanos=1_000_000,
    )
    cat = catalog(target, control)
    decision = plan(request(**request_fields), cat, policy, HEALTHY, 0.0, context=context or RequestContext())
    (view,) = [c for c in decision.candidates if c.key == target.key]
    assert target.key not in decision.chain
    assert not view.eligible
    return view.exclusion_reason


@pytest.mark.parametrize(
    ("target", "fields", "reason"),
    [
        (
            deployment("p/m", capabilities=frozenset()),
            {"tools": (ToolSpec("f"),)},
            "lacks capability: tools",
        ),
        (
            deployment("p/m", capabilities=frozenset({"tools"})),
            {"response_format": ResponseFormat(ResponseFormatType.JSON_SCHEMA), "tools": (ToolSpec("f"),)},
            "lacks capability: json",
        ),
        (
            deployment("p/m", context_window=1_000),
            {"text": "x" * 8_000},
            "context window 1000 < 2004 tokens needed (prompt ~2004)",
        ),
        (
            deployment("p/m", context_window=1_000),
            {"text": "hi", "params": GenerationParams(max_output_tokens=2_000)},
            "context window 1000 < 2005 tokens needed (prompt ~5 + max output 2000)",
        ),
        (
            deployment("p/m", max_output_tokens=4_096),
            {"params": GenerationParams(max_output_tokens=8_000)},
            "max_output_tokens 8000 above this model's limit (4096)",
        ),
        (
            deployment("p/m", max_sensitivity=DataSensitivity.INTERNAL),
            {"hints": RoutingHints(data_sensitivity=DataSensitivity.RESTRICTED, task_type=TaskType.CHAT)},
            "data sensitivity restricted above this deployment's limit (internal)",
        ),
        (
            deployment("p/m", tasks=frozenset({TaskType.CHAT})),
            {"task": TaskType.CODE},
            "not configured for code tasks",
        ),
        (
            deployment("p/m"),
            {"hints": RoutingHints(allowed_providers=frozenset({"ctl"}), task_type=TaskType.CHAT)},
            "provider 'p' not in the request's allowed_providers",
        ),
        (
            deployment("p/m"),
            {"hints": RoutingHints(denied_providers=frozenset({"p"}), task_type=TaskType.CHAT)},
            "provider 'p' in the request's denied_providers",
        ),
        (
            deployment("p/m", default_quality=0.3),
            {"hints": RoutingHints(min_quality=0.5, task_type=TaskType.CHAT)},
            "quality 0.30 below floor 0.50 for chat",
        ),
        (
            deployment("p/m", output_nanos=10**12),
            {"hints": RoutingHints(max_cost_nanos=1_000_000, task_type=TaskType.CHAT)},
            "estimated cost 300006000 nano-USD above cap 1000000",
        ),
    ],
)
def test_request_constraint_reasons(target: Deployment, fields: dict[str, Any], reason: str) -> None:
    assert reasons_for(target, **fields) == reason


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (Policy("eu", regions=frozenset({"eu"})), "region 'us' not in policy 'eu' regions (eu)"),
        (
            Policy("only-ctl", allowed_providers=frozenset({"ctl"})),
            "provider 'p' not allowed by policy 'only-ctl'",
        ),
        (Policy("no-p", denied_providers=frozenset({"p"})), "provider 'p' denied by policy 'no-p'"),
        (
            Policy("pii-safe", min_sensitivity=DataSensitivity.RESTRICTED),
            "data sensitivity restricted above this deployment's limit (internal)",
        ),
        (Policy("capped", max_cost_nanos=1_000_000), "estimated cost 300006000 nano-USD above cap 1000000"),
        (Policy("good", min_quality=0.9), "quality 0.50 below floor 0.90 for chat"),
    ],
)
def test_policy_constraint_reasons(policy: Policy, reason: str) -> None:
    target = deployment("p/m", region="us", output_nanos=10**12, default_quality=0.5)
    control = deployment(
        "ctl/c",
        region="eu",
        max_sensitivity=DataSensitivity.RESTRICTED,
        default_quality=0.95,
        output_nanos=1_000_000,
    )
    decision = plan(request(), catalog(target, control), policy, HEALTHY, 0.0)
    assert {c.key: c.exclusion_reason for c in decision.candidates}["p/m"] == reason
    assert decision.chain == ("ctl/c",)


def test_key_access_allows_by_model_name_or_deployment_key() -> None:
    cat = catalog(deployment("p/m"), deployment("q/m"), deployment("r/other"))
    context = RequestContext(allowed_models=frozenset({"m", "r/other"}))
    decision = plan(
        request(), cat, OPEN, HEALTHY, 0.0, context=RequestContext(allowed_models=frozenset({"p/m"}))
    )
    assert decision.chain == ("p/m",)
    assert {c.key: c.exclusion_reason for c in decision.candidates}[
        "q/m"
    ] == "model 'm' not allowed for this API key"
    assert plan(request(), cat, OPEN, HEALTHY, 0.0, context=context).chain == ("p/m", "q/m", "r/other")


@pytest.mark.parametrize(
    ("models", "reasons"),
    [
        # Regions only: every model may be used, so the region is what excludes.
        (
            frozenset(),
            {
                "us1/m": "region 'us' not in this API key's regions (eu, eu-2)",
                "nowhere/m": "region 'unknown' not in this API key's regions (eu, eu-2)",
                "eu1/other": "",
            },
        ),
        # Both rules: the model rule is named when the model is out, whatever the region.
        (
            frozenset({"m"}),
            {
                "us1/m": "region 'us' not in this API key's regions (eu, eu-2)",
                "nowhere/m": "region 'unknown' not in this API key's regions (eu, eu-2)",
                "eu1/other": "model 'other' not allowed for this API key",
                "us1/other": "model 'other' not allowed for this API key",
            },
        ),
        # A deployment key in the model allow-list admits only that deployment of its model.
        (
            frozenset({"eu1/m"}),
            dict.fromkeys(("eu2/m", "us1/m"), "model 'm' not allowed for this API key"),
        ),
    ],
)
def test_a_key_exclusion_names_the_rule_model_or_region_that_excluded_it(
    models: frozenset[str], reasons: dict[str, str]
) -> None:
    cat = catalog(
        deployment("eu1/m", region="eu"),
        deployment("eu2/m", region="eu-2"),
        deployment("us1/m", region="us"),
        deployment("nowhere/m"),
        deployment("eu1/other", region="eu"),
        deployment("us1/other", region="us"),
    )
    identity = Identity(key_id="k", allowed_models=models, allowed_regions=frozenset({"eu", "eu-2"}))
    context = RequestContext(allowed_models=allowed_models(identity, cat))
    decision = plan(request(), cat, OPEN, HEALTHY, 0.0, context=context)
    got = {c.key: c.exclusion_reason for c in decision.candidates}
    assert {key: got[key] for key in reasons} == reasons
    assert "eu1/m" in decision.chain and got["eu1/m"] == ""


def test_streaming_requires_the_streaming_capability() -> None:
    target = deployment("p/m", capabilities=frozenset({"tools"}))
    assert reasons_for(target, context=RequestContext(streaming=True)) == "lacks capability: streaming"


def test_health_reason_comes_from_the_health_view_and_policy_reasons_win() -> None:
    cat = catalog(
        deployment("p/m", region="us"), deployment("q/m", region="eu"), deployment("r/m", region="eu")
    )
    health = Unavailable({"p/m": "circuit open", "q/m": "circuit open: cooling down 3.0s more after auth"})
    decision = plan(request(), cat, Policy("eu", regions=frozenset({"eu"})), health, 0.0)
    reasons = {c.key: c.exclusion_reason for c in decision.candidates}
    assert reasons["p/m"].startswith("region 'us'")
    assert reasons["q/m"] == "circuit open: cooling down 3.0s more after auth"
    assert decision.chain == ("r/m",)


def test_latency_ceiling_excludes_known_slow_but_not_cold_deployments() -> None:
    cat = catalog(deployment("p/slow"), deployment("q/fast"), deployment("r/cold"))
    live = FixedLatency({"p/slow": 3.0, "q/fast": 0.5})
    decision = plan(request(), cat, Policy("snappy", max_p95_s=1.0), HEALTHY, 0.0, live=live)
    reasons = {c.key: c.exclusion_reason for c in decision.candidates}
    assert reasons == {"p/slow": "p95 3.00s above policy ceiling 1.00s", "q/fast": "", "r/cold": ""}


def test_the_stricter_of_hint_and_policy_applies() -> None:
    cat = catalog(deployment("p/m", default_quality=0.7), deployment("q/m", default_quality=0.9))
    hints = RoutingHints(min_quality=0.6, task_type=TaskType.CHAT)
    assert plan(request(hints=hints), cat, Policy("q", min_quality=0.8), HEALTHY, 0.0).chain == ("q/m",)
    hints = RoutingHints(min_quality=0.8, task_type=TaskType.CHAT)
    assert plan(request(hints=hints), cat, Policy("q", min_quality=0.6), HEALTHY, 0.0).chain == ("q/m",)


def test_observed_quality_is_what_the_floor_checks() -> None:
    cat = catalog(deployment("p/m", default_quality=0.9), deployment("q/m", default_quality=0.9))
    decision = plan(
        request(), cat, Policy("q", min_quality=0.8), HEALTHY, 0.0, quality=FixedQuality({"p/m": 0.2})
    )
    assert decision.chain == ("q/m",)


def test_first_failing_check_is_the_reason_reported() -> None:
    # Both the policy region and the capability fail: the policy's own reason is first.
    target = deployment("p/m", region="us", capabilities=frozenset())
    reason = reasons_for(target, Policy("eu", regions=frozenset({"eu", ""})), tools=(ToolSpec("f"),))
    assert reason.startswith("region 'us'")


def test_no_eligible_candidate_lists_every_candidate_with_its_reason() -> None:
    cat = catalog(deployment("p/m", capabilities=frozenset()), deployment("q/m", context_window=10))
    with pytest.raises(NoEligibleCandidateError) as caught:
        plan(request("x" * 100, tools=(ToolSpec("f"),)), cat, OPEN, Unavailable({}), 0.0)
    assert caught.value.exclusions == {
        "p/m": "lacks capability: tools",
        "q/m": "context window 10 < 46 tokens needed (prompt ~46)",
    }


def test_floors_on_configured_priors_give_each_floor_its_own_reasons() -> None:
    cat = catalog(
        deployment("p/m", default_quality=0.3),
        deployment("q/m", default_quality=0.7),
        deployment("r/m", default_quality=0.95),
    )
    policy = Policy("q")  # the same compiled table for every request below
    for floor, expected in [
        (0.5, {"p/m": "quality 0.30 below floor 0.50 for chat", "q/m": "", "r/m": ""}),
        (
            0.9,
            {
                "p/m": "quality 0.30 below floor 0.90 for chat",
                "q/m": "quality 0.70 below floor 0.90 for chat",
                "r/m": "",
            },
        ),
        (0.5, {"p/m": "quality 0.30 below floor 0.50 for chat", "q/m": "", "r/m": ""}),
    ]:
        hints = RoutingHints(min_quality=floor, task_type=TaskType.CHAT)
        decision = plan(request(hints=hints), cat, policy, HEALTHY, 0.0)
        assert {c.key: c.exclusion_reason for c in decision.candidates} == expected
    code = RoutingHints(min_quality=0.5, task_type=TaskType.CODE)
    reasons = {
        c.key: c.exclusion_reason for c in plan(request(hints=code), cat, policy, HEALTHY, 0.0).candidates
    }
    assert reasons["p/m"] == "quality 0.30 below floor 0.50 for code"
