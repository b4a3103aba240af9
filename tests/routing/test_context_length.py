"""A request that fits no candidate's context window is the caller's to fix: CONTEXT_LENGTH_EXCEEDED
(INVALID_ARGUMENT), whatever else excluded some candidates. If any candidate's window is large
enough, nothing eligible stays NO_ELIGIBLE_CANDIDATE (FAILED_PRECONDITION)."""

from __future__ import annotations

import pytest

from router_service.domain import GenerationParams, ToolSpec
from router_service.errors import ContextLengthExceededError, NoEligibleCandidateError, status_of
from router_service.routing.planner import plan
from router_service.routing.policy import Policy
from tests.routing.factories import HEALTHY, Unavailable, catalog, deployment, request

SMALL = deployment("p/small", context_window=1_000)
MEDIUM = deployment("q/medium", context_window=2_000, capabilities=frozenset({"streaming"}))
POLICY = Policy("p")
LONG = "x" * 12_000  # ~3,000 tokens: more than either window


def test_too_long_for_every_candidate_is_context_length_exceeded() -> None:
    with pytest.raises(ContextLengthExceededError) as error:
        plan(request(LONG), catalog(SMALL, MEDIUM), POLICY, HEALTHY, 0.0)
    assert status_of(error.value) == ("INVALID_ARGUMENT", "CONTEXT_LENGTH_EXCEEDED")
    assert error.value.largest_window == 2_000 and error.value.tokens_needed > 2_000
    assert "prompt too long for every candidate" in str(error.value)
    assert set(error.value.exclusions) == {"p/small", "q/medium"}  # still every reason, for Route
    assert error.value.decision is not None and error.value.decision.chain == ()


def test_other_reasons_do_not_hide_that_nothing_could_fit() -> None:
    # The medium one is excluded for tools first and the small one is down; neither fits anyway.
    health = Unavailable({"p/small": "in cooldown"})
    with pytest.raises(ContextLengthExceededError):
        plan(request(LONG, tools=(ToolSpec("f"),)), catalog(SMALL, MEDIUM), POLICY, health, 0.0)


def test_requested_output_counts_towards_the_window() -> None:
    tight = request("x" * 2_000, params=GenerationParams(max_output_tokens=1_800))  # ~500 + 1,800
    with pytest.raises(ContextLengthExceededError):
        plan(tight, catalog(SMALL, deployment("q/medium", context_window=2_000)), POLICY, HEALTHY, 0.0)


@pytest.mark.parametrize(
    ("text", "tools", "health"),
    [
        ("x" * 6_000, (ToolSpec("f"),), HEALTHY),  # fits the medium one, which lacks tools
        ("x" * 6_000, (), Unavailable({"q/medium": "in cooldown"})),  # fits the medium one, which is down
    ],
)
def test_a_candidate_that_would_fit_keeps_it_no_eligible_candidate(
    text: str, tools: tuple[ToolSpec, ...], health: object
) -> None:
    with pytest.raises(NoEligibleCandidateError) as error:
        plan(request(text, tools=tools), catalog(SMALL, MEDIUM), POLICY, health, 0.0)  # type: ignore[arg-type]
    assert not isinstance(error.value, ContextLengthExceededError)
    assert status_of(error.value) == ("FAILED_PRECONDITION", "NO_ELIGIBLE_CANDIDATE")
