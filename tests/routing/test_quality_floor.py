"""Quality floors: what they compare (known estimates only) and whom they spare (pins).

A missing prior is "unknown", not "bad": a deployment without a prior for the task is estimated
by the mean of its configured priors; one with no prior at all ranks with a neutral 0.5 and is
not excluded by a floor until fleet feedback makes it known. A pin is the caller's decision, so
floors do not apply to the pinned deployments; every other check still does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from router_service.catalog import UNKNOWN_QUALITY
from router_service.domain import (
    ChatRequest,
    ResponseFormat,
    ResponseFormatType,
    RoutingHints,
    TaskType,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)
from router_service.errors import NoEligibleCandidateError
from router_service.fleet.config import FleetConfig
from router_service.fleet.signals import FleetSignals
from router_service.fleet.view import FleetView, QualityStats
from router_service.resilience.live_state import LiveState
from router_service.routing.planner import plan
from router_service.routing.policy import Policy
from router_service.routing.router import Router
from router_service.settings import load_config
from tests.routing.factories import HEALTHY, FixedQuality, Unavailable, catalog, deployment, request

CREATIVE = TaskType.CREATIVE
FLOOR = Policy("floor", strategy="cost", min_quality=0.55)


class ObservedQuality(FixedQuality):
    """A QualityView that also says which scores rest on feedback (`ObservedQualityView`)."""

    def observed(self, key: str, task: TaskType) -> bool:
        return key in self._scores


def _views(decision_or_error: object) -> dict[str, tuple[float, bool, str]]:
    decision = getattr(decision_or_error, "decision", decision_or_error)
    return {c.key: (c.quality, c.quality_known, c.exclusion_reason) for c in decision.candidates}  # type: ignore[attr-defined]


# --- unknown is not bad --------------------------------------------------------------------


def test_a_missing_prior_is_estimated_by_the_mean_of_the_configured_ones() -> None:
    cat = catalog(
        deployment("p/chatty", quality={TaskType.CHAT: 0.6, TaskType.CODE: 0.8}),  # mean 0.7
        deployment("p/weak", quality={TaskType.CHAT: 0.4, TaskType.CODE: 0.5}),  # mean 0.45
    )
    decision = plan(request(task=CREATIVE), cat, FLOOR, HEALTHY, 0.0)
    views = _views(decision)
    assert views["p/chatty"] == (pytest.approx(0.7), True, "")
    assert views["p/weak"] == (pytest.approx(0.45), True, "quality 0.45 below floor 0.55 for creative")
    assert decision.chain == ("p/chatty",)


def test_an_explicit_default_quality_is_a_known_prior_for_every_other_task() -> None:
    cat = catalog(deployment("p/m", quality={TaskType.CHAT: 0.9}, default_quality=0.3))
    with pytest.raises(NoEligibleCandidateError) as error:
        plan(request(task=CREATIVE), cat, FLOOR, HEALTHY, 0.0)
    assert error.value.exclusions == {"p/m": "quality 0.30 below floor 0.55 for creative"}


def test_no_prior_at_all_is_unknown_never_excluded_by_a_floor_and_ranks_neutral() -> None:
    cat = catalog(deployment("p/new"), deployment("p/good", default_quality=0.9))
    strict = Policy("strict", strategy="quality", min_quality=0.8)
    decision = plan(request(task=CREATIVE), cat, strict, HEALTHY, 0.0)
    views = _views(decision)
    assert views["p/new"] == (UNKNOWN_QUALITY, False, "")
    assert views["p/good"] == (0.9, True, "")
    assert decision.chain == ("p/good", "p/new")  # eligible, ranked with 0.5 behind a known 0.9


def test_feedback_makes_an_unknown_quality_known_and_the_floor_then_applies() -> None:
    cat = catalog(deployment("p/new"), deployment("p/other"))
    view = ObservedQuality({"p/new": 0.2})  # "p/other" has no feedback: still unknown
    with pytest.raises(NoEligibleCandidateError):
        plan(request(), cat, Policy("x", models=("new",), min_quality=0.55), HEALTHY, 0.0, quality=view)
    decision = plan(request(), cat, FLOOR, HEALTHY, 0.0, quality=view)
    views = _views(decision)
    assert views["p/new"] == (0.2, True, "quality 0.20 below floor 0.55 for chat")
    assert views["p/other"] == (UNKNOWN_QUALITY, False, "")


def test_a_quality_view_that_cannot_say_what_it_observed_leaves_unknown_unknown() -> None:
    cat = catalog(deployment("p/new"))
    decision = plan(request(), cat, FLOOR, HEALTHY, 0.0, quality=FixedQuality({"p/new": 0.2}))
    assert _views(decision)["p/new"] == (0.2, False, "")


def test_fleet_feedback_for_the_model_and_task_is_what_makes_it_known() -> None:
    stats = QualityStats(mean=0.1, count=90, confidence=0.9)
    fleet = FleetSignals(LiveState(), FleetConfig(), FleetView(quality={("new", TaskType.CODE): stats}))
    cat = catalog(deployment("p/new"), deployment("p/good", default_quality=0.9))
    view = fleet.quality_view()
    assert view is not None
    code = plan(request(task=TaskType.CODE), cat, FLOOR, HEALTHY, 0.0, quality=view)
    assert _views(code)["p/new"] == (pytest.approx(0.14), True, "quality 0.14 below floor 0.55 for code")
    chat = plan(request(task=TaskType.CHAT), cat, FLOOR, HEALTHY, 0.0, quality=view)
    assert _views(chat)["p/new"] == (UNKNOWN_QUALITY, False, "")


def test_the_embedded_default_policy_serves_every_task() -> None:
    """`make up`'s config: no task may leave the default policy without a candidate."""
    urls = {f"SIM_{name}_URL": "http://127.0.0.1:1" for name in ("FAST", "CHEAP", "PREMIUM")}
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", **urls}
    config = load_config(Path(__file__).parents[2] / "config" / "embedded.yaml", env)
    router = Router(config.catalog, config.policies, config.routing.default_policy)
    for task in TaskType:
        for extra in (
            {},
            {"tools": (ToolSpec("f"),)},
            {"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)},
        ):
            decision = router.route(request(task=task, **extra), HEALTHY, 0.0)
            assert decision.chain, (task, extra)


# --- pins are the caller's decision ----------------------------------------------------------

LOW = deployment("p/low", default_quality=0.2, capabilities=frozenset({"tools", "json", "streaming"}))
HIGH = deployment("q/high", default_quality=0.9)
BELOW = deployment("r/below", default_quality=0.3)
PINS = catalog(LOW, HIGH, BELOW)


@pytest.mark.parametrize("disable_fallback", [True, False])
def test_a_pinned_model_is_not_refused_by_the_policy_floor(disable_fallback: bool) -> None:
    decision = plan(request(model="low", disable_fallback=disable_fallback), PINS, FLOOR, HEALTHY, 0.0)
    assert decision.chain[0] == "p/low"
    views = _views(decision)
    assert views["p/low"] == (0.2, True, "")
    if not disable_fallback:  # the policy's own fallbacks still meet its floor
        assert decision.chain == ("p/low", "q/high")
        assert views["r/below"][2] == "quality 0.30 below floor 0.55 for chat"


def test_a_pinned_deployment_is_not_refused_by_the_floor_with_a_quality_view() -> None:
    decision = plan(
        request(model="p/low", disable_fallback=True),
        PINS,
        FLOOR,
        HEALTHY,
        0.0,
        quality=FixedQuality({"p/low": 0.1}),
    )
    assert decision.chain == ("p/low",)


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": (ToolSpec("f"),), "tool_choice": ToolChoice(ToolChoiceMode.REQUIRED)},
        {"response_format": ResponseFormat(ResponseFormatType.JSON_OBJECT)},
    ],
)
def test_forced_tools_and_json_mode_on_a_pin_are_not_refused_by_the_floor(extra: dict[str, object]) -> None:
    pinned = request(model="low", disable_fallback=True, task=None, **extra)
    assert plan(pinned, PINS, FLOOR, HEALTHY, 0.0).chain == ("p/low",)


def test_a_pin_still_meets_capability_health_and_the_callers_cost_cap() -> None:
    no_tools = catalog(deployment("p/low", default_quality=0.2, capabilities=frozenset({"streaming"})))
    with pytest.raises(NoEligibleCandidateError, match="lacks capability: tools"):
        plan(
            request(model="low", disable_fallback=True, tools=(ToolSpec("f"),)), no_tools, FLOOR, HEALTHY, 0.0
        )
    with pytest.raises(NoEligibleCandidateError, match="down"):
        plan(request(model="low", disable_fallback=True), PINS, FLOOR, Unavailable({"p/low": "down"}), 0.0)
    capped = ChatRequest(
        messages=request().messages,
        selection=request(model="low", disable_fallback=True).selection,
        hints=RoutingHints(task_type=TaskType.CHAT, max_cost_nanos=1),
    )
    with pytest.raises(NoEligibleCandidateError, match="above cap 1"):
        plan(capped, PINS, FLOOR, HEALTHY, 0.0)
