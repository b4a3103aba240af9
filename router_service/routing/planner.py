"""Routing policy as a pure function: (request, catalog, policy, health, now) -> RouteDecision.

No I/O, no clocks, no randomness of its own: everything that varies comes in as an argument
(the round-robin ticket and random samples in `RequestContext`, live latency in `live`), so a
decision is reproducible in a unit test and cheap on the request path.

Steps:
1. candidates: the pinned model's deployments first (then the policy's, unless the caller
   disabled fallback), an alias's members in order, or the policy's models;
2. classify the task (unless hinted) and estimate tokens and cost per candidate;
3. filter: the first failing check per candidate becomes its exclusion reason, health last
   (quality floors exempt pinned candidates and unknown qualities: `filters.quality_floor`);
   nothing eligible is NO_ELIGIBLE_CANDIDATE, or CONTEXT_LENGTH_EXCEEDED when the request fits
   no candidate's context window at all;
4. order the eligible with the policy's strategy composition (pinned ones stay ahead), then two
   soft preferences: candidates missing the request's latency target go after those meeting it,
   and a deployment in slow start keeps its place only for its ramp fraction of requests;
5. the chain is the first `max_attempts` (one if the caller disabled fallback).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from router_service.catalog import Catalog
from router_service.domain import CandidateView, ChatRequest, RouteDecision, TaskType
from router_service.errors import ContextLengthExceededError, NoEligibleCandidateError
from router_service.routing.candidate import CandidateTable
from router_service.routing.classifier import DEFAULT_CLASSIFIER, TaskClassifier
from router_service.routing.compiled import ALIAS, CompiledPolicy, compiled_policy
from router_service.routing.cost import CostModel
from router_service.routing.filters import RequestLimits, run_checks
from router_service.routing.policy import Policy
from router_service.routing.signals import AlwaysHealthy, HealthView, LiveSignals, QualityView
from router_service.routing.strategies import RankContext

__all__ = ["AlwaysHealthy", "HealthView", "RequestContext", "RoutingEnv", "decide", "plan"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Per-request inputs besides the request itself. `routing.router.Router` draws them."""

    random_value: float = 0.0  # uniform in [0, 1): the weighted strategy's sample
    ramp_value: float = 0.0  # uniform in [0, 1): slow-start admission
    ticket: int = 0  # round-robin position: a per-policy counter, +1 per request
    streaming: bool = False  # needs the "streaming" capability; latency means time to first token
    allowed_models: frozenset[str] | None = None  # the caller's key scope (names or keys); None: any


@dataclass(frozen=True, slots=True)
class RoutingEnv:
    """Startup-time collaborators: built once from config."""

    classifier: TaskClassifier = DEFAULT_CLASSIFIER
    cost_model: CostModel = field(default_factory=CostModel)


DEFAULT_CONTEXT = RequestContext()
DEFAULT_ENV = RoutingEnv()


def plan(
    request: ChatRequest,
    catalog: Catalog,
    policy: Policy,
    health: HealthView,
    now: float,
    *,
    context: RequestContext = DEFAULT_CONTEXT,
    live: LiveSignals | None = None,
    quality: QualityView | None = None,
    env: RoutingEnv = DEFAULT_ENV,
) -> RouteDecision:
    """Raises UnknownModelError for an unknown pin or alias, NoEligibleCandidateError (with a
    reason per candidate) when every candidate is excluded."""
    return decide(
        compiled_policy(catalog, policy),
        request,
        health,
        now,
        live=live,
        quality=quality,
        env=env,
        random_value=context.random_value,
        ramp_value=context.ramp_value,
        ticket=context.ticket,
        streaming=context.streaming,
        allowed_models=context.allowed_models,
    )


def decide(
    compiled: CompiledPolicy,
    request: ChatRequest,
    health: HealthView,
    now: float,
    *,
    live: LiveSignals | None,
    quality: QualityView | None,
    env: RoutingEnv,
    random_value: float,
    ramp_value: float,
    ticket: int,
    streaming: bool,
    allowed_models: frozenset[str] | None,
) -> RouteDecision:
    """`plan` for an already compiled policy, with the `RequestContext` fields passed one by one:
    what `Router.route` calls, which keeps its compiled policies and so builds neither per request."""
    policy = compiled.policy
    table, strategy = compiled.candidates(request.selection)
    hints = request.hints
    task = hints.task_type
    if task is None:
        task = env.classifier.classify(request)
    estimate = env.cost_model.estimate(request, task)
    ctx = RankContext(
        table,
        env.cost_model.costs(table, estimate),
        task,
        now,
        live=live,
        quality_view=quality,
        streaming=streaming,
        random_value=random_value,
        ticket=ticket,
    )
    limits = RequestLimits(
        request, policy, task, estimate, streaming=streaming, allowed_models=allowed_models
    )
    ctx.floor = limits.min_quality
    eligible, reasons = run_checks(ctx, limits)
    eligible = _healthy(eligible, reasons, table, health, now)
    if not eligible:
        # The decision (empty chain, every candidate with its reason) goes with the error, for
        # the engine to publish: why nothing could serve is what a data team asks first.
        views = _views(ctx, reasons, [0.0] * len(table))
        decision = _decision(policy.name, strategy, task, (), views)
        raise _no_eligible(table, limits, reasons, decision)
    limit = 1 if request.selection.disable_fallback else policy.max_attempts
    composite = compiled.composite
    eligible_scores = composite.scores(eligible, ctx)
    if strategy == ALIAS:  # an alias is an ordered list: its order is the point
        ordered: Sequence[Iterable[int]] = [eligible]
    elif not table.pinned_count:
        ordered = [composite.order(eligible, ctx, eligible_scores)]
    else:
        score_of = dict(zip(eligible, eligible_scores, strict=True))
        ordered = [
            composite.order(g, ctx, [score_of[i] for i in g])
            for g in _pinned_first(eligible, table.pinned_count)
        ]
    chain = _chain(ordered, limit, _deferral(ctx, hints.latency_target_s, ramp_value))
    keys = table.keys
    return _decision(
        policy.name,
        strategy,
        task,
        tuple([keys[i] for i in chain]),
        _views(ctx, reasons, _scatter(eligible, eligible_scores, len(table))),
    )


def _no_eligible(
    table: CandidateTable, limits: RequestLimits, reasons: list[str | None], decision: RouteDecision
) -> NoEligibleCandidateError:
    """The error for a request nothing may serve, with every candidate's reason.

    When the request needs more tokens than the largest context window among the candidates, it is
    CONTEXT_LENGTH_EXCEEDED whatever else excluded some of them (a capability, a cooldown, the
    caller's key): none could have served this prompt, so only a shorter one can succeed and the
    caller must be told that, not to retry. Otherwise some candidate would fit, and it is
    NO_ELIGIBLE_CANDIDATE."""
    # None eligible: every candidate has a reason (a str), so no `or ""` per candidate.
    exclusions: dict[str, str] = dict(zip(table.keys, reasons, strict=True))  # type: ignore[arg-type]
    needed = limits.tokens_needed
    if needed > table.largest_context_window:
        return ContextLengthExceededError(exclusions, needed, table.largest_context_window, decision)
    return NoEligibleCandidateError(exclusions, decision)


def _healthy(
    eligible: list[int], reasons: list[str | None], table: CandidateTable, health: HealthView, now: float
) -> list[int]:
    """Health last: it is the only check that asks live state, and the policy's reasons win.

    `eligible` (which this may change) is exactly the indices whose reason is None, ascending."""
    keys, index_of = table.keys, table.index_of
    bulk = getattr(health, "unavailable_reasons", None)  # the optional BulkHealthView method
    if bulk is None:
        unavailable = health.unavailable_reason
        for i in eligible:
            reasons[i] = unavailable(keys[i], now)
        return [i for i in eligible if reasons[i] is None]
    unhealthy: Mapping[str, str] = bulk(now)
    for key, reason in unhealthy.items():  # usually none or a few
        index = index_of.get(key)
        if index is not None and reasons[index] is None:  # then it is in `eligible`, once
            reasons[index] = reason
            eligible.remove(index)  # cheaper than filtering all of `eligible` again
    return eligible


def _pinned_first(eligible: list[int], pinned_count: int) -> list[list[int]]:
    """Pinned candidates come first whatever they score: each group is ordered on its own."""
    return [[i for i in eligible if i < pinned_count], [i for i in eligible if i >= pinned_count]]


def _deferral(ctx: RankContext, latency_target_s: float | None, ramp_value: float) -> Callable[[int], bool]:
    """Soft preferences, which reorder but never exclude:
    - a candidate known to be slower than the request's latency target goes after those that
      are not (a target is a preference; a hard ceiling is `Policy.max_p95_s`);
    - a deployment in slow start after an outage keeps its place for its ramp fraction of
      requests and goes later otherwise: still a fallback, never a thundering herd.
    """
    live, keys = ctx.live, ctx.table.keys
    if live is None:
        return _never
    ramping = live.ramping(ctx.now)
    if not ramping and latency_target_s is None:  # the common case
        return _never
    # Held back this time: ramping deployments whose fraction this request's draw exceeds.
    held_back = {key for key, fraction in ramping.items() if ramp_value >= fraction}
    if latency_target_s is None:
        return (lambda i: keys[i] in held_back) if held_back else _never
    p95s = ctx.p95s
    return lambda i: keys[i] in held_back or ((p95 := p95s[i]) is not None and p95 > latency_target_s)


def _never(index: int) -> bool:
    return False


def _chain(groups: Sequence[Iterable[int]], limit: int, deferred: Callable[[int], bool]) -> list[int]:
    """The first `limit` of each group in order, deferred ones after the rest of their group.

    Stops as soon as the chain is full, without pulling another candidate from the (lazy) order,
    so the soft preferences are evaluated, and ties broken, for a handful of candidates only.
    """
    chain: list[int] = []
    for ranked in groups:
        if len(chain) >= limit:
            break
        if deferred is _never:  # the common case: no per-candidate check at all
            chain.extend(itertools.islice(ranked, limit - len(chain)))
            continue
        held_back: list[int] = []
        for i in ranked:
            (held_back if deferred(i) else chain).append(i)
            if len(chain) >= limit:
                break
        chain += held_back
    return chain[:limit]


def _decision(
    policy: str, strategy: str, task: TaskType, chain: tuple[str, ...], candidates: tuple[CandidateView, ...]
) -> RouteDecision:
    return RouteDecision(policy, strategy, task, chain, candidates)


def _scatter(indices: Sequence[int], values: Sequence[float], size: int) -> list[float]:
    """values[k] at position indices[k], 0 elsewhere (excluded candidates score 0)."""
    out = [0.0] * size
    for i, value in zip(indices, values, strict=True):
        out[i] = value
    return out


def _views(
    ctx: RankContext, reasons: Sequence[str | None], scores: Sequence[float]
) -> tuple[CandidateView, ...]:
    table = ctx.table
    if ctx.posteriors_read:  # a learning strategy or floor read them: show what they rest on
        return _learned_views(ctx, reasons, scores)
    return tuple(
        [
            CandidateView(provider, model, reason is None, reason or "", score, cost, quality, known)
            for provider, model, reason, score, cost, quality, known in zip(
                table.providers,
                table.models,
                reasons,
                scores,
                ctx.cost_nanos,
                ctx.qualities,
                ctx.quality_known,
                strict=True,
            )
        ]
    )


def _learned_views(
    ctx: RankContext, reasons: Sequence[str | None], scores: Sequence[float]
) -> tuple[CandidateView, ...]:
    """`_views` with each candidate's posterior: estimate, uncertainty, the scores it rests on,
    and whether it is this request's exploration probe."""
    table = ctx.table
    # Built as not probes, then the probe (at most one) rebuilt: no index or comparison per
    # candidate on the request path (50 views are a large part of a learned decision).
    views = [
        CandidateView(
            provider,
            model,
            reason is None,
            reason or "",
            score,
            cost,
            posterior.mean,
            known,
            posterior.sd,
            posterior.count,
        )
        for provider, model, reason, score, cost, posterior, known in zip(
            table.providers,
            table.models,
            reasons,
            scores,
            ctx.cost_nanos,
            ctx.posteriors,
            ctx.quality_known,
            strict=True,
        )
    ]
    explored = ctx.explored
    if explored >= 0:  # a probe: a share of traffic the exploration budget bounds
        views[explored] = dataclasses.replace(views[explored], exploration=True)
    return tuple(views)
