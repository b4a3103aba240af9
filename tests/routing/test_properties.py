"""Properties of plan() over random catalogs, policies, requests and health:
it never picks an excluded candidate, and it always returns a decision or a precise reason per
candidate why none exists."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import (
    ChatRequest,
    DataSensitivity,
    GenerationParams,
    Message,
    ModelSelection,
    Role,
    RoutingHints,
    TaskType,
    ToolSpec,
)
from router_service.errors import ContextLengthExceededError, NoEligibleCandidateError
from router_service.routing.cost import CostModel
from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import BulkUnavailable, FixedLatency, Unavailable

PROVIDERS = ("p1", "p2", "p3")
MODELS = ("m1", "m2", "m3", "m4")
COMPOSITIONS = (
    "priority",
    "round_robin",
    "weighted",
    "cost",
    "latency",
    "quality",
    "quality>cost",
    "cost>latency>weighted",
    "latency>quality>priority",
)


@st.composite
def deployments(draw: st.DrawFn) -> Deployment:
    return Deployment(
        provider=draw(st.sampled_from(PROVIDERS)),
        model=draw(st.sampled_from(MODELS)),
        upstream_model="u",
        price=Price(*(draw(st.integers(0, 20_000_000_000)) for _ in range(3))),
        context_window=draw(st.sampled_from((1_000, 8_000, 128_000))),
        max_output_tokens=draw(st.sampled_from((1_000, 4_096, 16_384))),
        capabilities=draw(st.frozensets(st.sampled_from(("tools", "json", "streaming")))),
        max_sensitivity=draw(st.sampled_from(tuple(DataSensitivity))),
        region=draw(st.sampled_from(("", "us", "eu"))),
        quality={
            t: draw(st.floats(0, 1)) for t in draw(st.sets(st.sampled_from(tuple(TaskType)), max_size=3))
        },
        default_quality=draw(st.none() | st.floats(0, 1)),
        tasks=draw(st.frozensets(st.sampled_from(tuple(TaskType)), max_size=3)),
        expected_cached_fraction=draw(st.sampled_from((0.0, 0.5, 1.0))),
    )


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    unique = {d.key: d for d in draw(st.lists(deployments(), min_size=1, max_size=10))}
    models = sorted({d.model for d in unique.values()})
    return Catalog(deployments=tuple(unique.values()), aliases={"alias": tuple(models[:2])})


@st.composite
def policies(draw: st.DrawFn, catalog: Catalog) -> Policy:
    models = sorted({d.model for d in catalog.deployments})
    return Policy(
        name="p",
        models=tuple(draw(st.lists(st.sampled_from(models), unique=True, max_size=3))),
        strategy=draw(st.sampled_from(COMPOSITIONS)),
        max_attempts=draw(st.integers(1, 5)),
        params=StrategyParams(weights={m: draw(st.floats(0, 10)) for m in models}),
        max_cost_nanos=draw(st.none() | st.integers(0, 10_000_000)),
        min_quality=draw(st.none() | st.floats(0, 1)),
        max_p95_s=draw(st.none() | st.floats(0.1, 5)),
        min_sensitivity=draw(st.none() | st.sampled_from(tuple(DataSensitivity))),
        regions=draw(st.frozensets(st.sampled_from(("us", "eu")))),
        denied_providers=draw(st.frozensets(st.sampled_from(PROVIDERS), max_size=1)),
    )


@st.composite
def requests(draw: st.DrawFn, catalog: Catalog) -> ChatRequest:
    models = sorted({d.model for d in catalog.deployments})
    keys = sorted(d.key for d in catalog.deployments)
    selection = draw(
        st.sampled_from(
            (
                ModelSelection(),
                ModelSelection(alias="alias"),
                ModelSelection(model=models[0]),
                ModelSelection(model=keys[-1], disable_fallback=True),
                ModelSelection(disable_fallback=True),
            )
        )
    )
    return ChatRequest(
        messages=(Message(Role.USER, "x" * draw(st.integers(0, 40_000))),),
        selection=selection,
        params=GenerationParams(max_output_tokens=draw(st.none() | st.integers(1, 20_000))),
        tools=draw(st.sampled_from(((), (ToolSpec("f"),)))),
        hints=RoutingHints(
            task_type=draw(st.none() | st.sampled_from(tuple(TaskType))),
            max_cost_nanos=draw(st.none() | st.integers(0, 10_000_000)),
            min_quality=draw(st.none() | st.floats(0, 1)),
            latency_target_s=draw(st.none() | st.floats(0.1, 5)),
            data_sensitivity=draw(st.sampled_from(tuple(DataSensitivity))),
            allowed_providers=draw(st.frozensets(st.sampled_from(PROVIDERS), max_size=2)),
            denied_providers=draw(st.frozensets(st.sampled_from(PROVIDERS), max_size=1)),
        ),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[Catalog, Policy, ChatRequest, Unavailable, FixedLatency, RequestContext]:
    catalog = draw(catalogs())
    keys = [d.key for d in catalog.deployments]
    down = draw(st.sets(st.sampled_from(keys)))
    health = Unavailable({key: f"{key} is down" for key in down})
    live = FixedLatency(
        p95={k: draw(st.floats(0.01, 10)) for k in draw(st.sets(st.sampled_from(keys)))},
        ttft={k: draw(st.floats(0.01, 10)) for k in draw(st.sets(st.sampled_from(keys)))},
        ramp={k: draw(st.floats(0.05, 1)) for k in draw(st.sets(st.sampled_from(keys)))},
    )
    context = RequestContext(
        random_value=draw(st.floats(0, 1, exclude_max=True)),
        ramp_value=draw(st.floats(0, 1, exclude_max=True)),
        ticket=draw(st.integers(0, 1_000)),
        streaming=draw(st.booleans()),
        allowed_models=draw(st.none() | st.frozensets(st.sampled_from(MODELS))),
    )
    return catalog, draw(policies(catalog)), draw(requests(catalog)), health, live, context


@settings(max_examples=250, deadline=None)
@given(scenarios())
def test_never_picks_an_excluded_candidate_and_always_explains(
    scenario: tuple[Catalog, Policy, ChatRequest, Unavailable, FixedLatency, RequestContext],
) -> None:
    catalog, policy, request, health, live, context = scenario
    try:
        decision = plan(request, catalog, policy, health, 0.0, context=context, live=live)
    except NoEligibleCandidateError as error:
        assert error.exclusions, "no candidates at all must not look like 'all excluded'"
        assert all(error.exclusions.values()), "every candidate needs a reason"
        return
    bulk = plan(request, catalog, policy, BulkUnavailable(health.reasons), 0.0, context=context, live=live)
    assert bulk == decision, "the bulk health query decides exactly like the per-candidate one"
    views = {c.key: c for c in decision.candidates}
    assert len(views) == len(decision.candidates), "each candidate appears once"
    assert decision.chain, "a decision has a first choice"
    assert len(set(decision.chain)) == len(decision.chain), "no deployment twice in the chain"
    assert all(views[key].eligible for key in decision.chain), "never an excluded candidate"
    eligible = sum(c.eligible for c in decision.candidates)
    limit = 1 if request.selection.disable_fallback else policy.max_attempts
    assert len(decision.chain) == min(eligible, limit), "every eligible candidate is used up to the limit"
    for view in decision.candidates:
        assert view.eligible == (view.exclusion_reason == ""), "excluded iff there is a reason"
        assert view.estimated_cost_nanos >= 0
        if not view.eligible:
            assert view.score == 0.0
    assert not health.reasons.keys() & set(decision.chain), "never an unhealthy deployment"
    if request.selection.model and not request.selection.disable_fallback:
        pinned = {d.key for d in catalog.resolve_model(request.selection.model)}
        eligible_pins = [k for k in decision.chain if k in pinned]
        assert decision.chain[: len(eligible_pins)] == tuple(eligible_pins), "pins come first"


@settings(max_examples=250, deadline=None)
@given(scenarios())
def test_floors_exclude_only_known_unpinned_and_too_long_is_context_length(
    scenario: tuple[Catalog, Policy, ChatRequest, Unavailable, FixedLatency, RequestContext],
) -> None:
    """A floor reason is only ever given to a known, unpinned estimate below the floor; a
    request fitting no candidate's window is CONTEXT_LENGTH_EXCEEDED, and only then."""
    catalog, policy, request, health, live, context = scenario
    try:
        decision = plan(request, catalog, policy, health, 0.0, context=context, live=live)
        too_long = False
    except NoEligibleCandidateError as error:
        assert error.decision is not None
        decision = error.decision
        too_long = isinstance(error, ContextLengthExceededError)
    pinned = set()
    if request.selection.model:
        pinned = {d.key for d in catalog.resolve_model(request.selection.model)}
    floors = [f for f in (policy.min_quality, request.hints.min_quality) if f is not None]
    for view in decision.candidates:
        if " below floor " in view.exclusion_reason:
            assert view.quality_known and view.key not in pinned
            assert floors and view.quality < max(floors)
    estimate = CostModel().estimate(request, decision.task_type)
    needed = estimate.prompt_tokens + (estimate.requested_max_output or 0)
    largest = max(catalog.by_key[c.key].context_window for c in decision.candidates)
    assert too_long == (needed > largest), "context length exactly when even the largest window is too small"
