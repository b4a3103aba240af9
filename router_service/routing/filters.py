"""Hard constraints: which candidates cannot serve a request, and why.

`run_checks` runs the checks that apply to a request in the order below; a candidate's reason is
the first check it fails. Reasons are written for the people reading `Route` output: they name the
limit and the value that broke it.

Constraints combine the request's hints with the policy's own (the stricter applies) and the
caller's key (`allowed_models`). Health is checked by the planner after these, through HealthView.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from router_service.domain import ChatRequest, DataSensitivity, ResponseFormatType, TaskType
from router_service.routing.candidate import CandidateTable, sensitivity_rank, task_index
from router_service.routing.cost import TokenEstimate
from router_service.routing.key_allow_list import KeyAllowList
from router_service.routing.policy import Policy
from router_service.routing.strategies.base import RankContext


class RequestLimits:
    """What one request demands of a candidate, after merging hints, policy and key.

    A plain slotted class rather than a frozen dataclass: it is built on every request, and a
    frozen dataclass's __init__ costs a microsecond or two more.
    """

    __slots__ = (
        "allowed_models",
        "allowed_providers",
        "denied_providers",
        "max_cost_nanos",
        "max_p95_s",
        "min_quality",
        "prompt_tokens",
        "requested_max_output",
        "required_capabilities",
        "sensitivity",
        "sensitivity_rank",
        "task",
    )

    def __init__(
        self,
        request: ChatRequest,
        policy: Policy,
        task: TaskType,
        estimate: TokenEstimate,
        *,
        streaming: bool = False,
        allowed_models: frozenset[str] | None = None,
    ) -> None:
        hints = request.hints
        self.task = task
        self.sensitivity = _stricter_sensitivity(hints.data_sensitivity, policy.min_sensitivity)
        self.sensitivity_rank = sensitivity_rank(self.sensitivity)
        self.required_capabilities = required_capabilities(request, streaming)
        self.prompt_tokens = estimate.prompt_tokens
        self.requested_max_output = estimate.requested_max_output
        self.allowed_models = allowed_models  # the caller's key scope; None: any
        self.allowed_providers = hints.allowed_providers
        self.denied_providers = hints.denied_providers
        self.min_quality = _larger(hints.min_quality, policy.min_quality)
        self.max_cost_nanos = _smaller(hints.max_cost_nanos, policy.max_cost_nanos)
        self.max_p95_s = policy.max_p95_s

    @property
    def tokens_needed(self) -> int:
        return self.prompt_tokens + (self.requested_max_output or 0)


# One shared set per combination of (tools, json, streaming): none is built per request, and its
# hash (part of the exclusion memo's key) is computed once.
_CAPABILITY_SETS: Mapping[tuple[bool, bool, bool], frozenset[str]] = {
    (tools, json, streaming): frozenset(
        name for name, on in (("tools", tools), ("json", json), ("streaming", streaming)) if on
    )
    for tools in (False, True)
    for json in (False, True)
    for streaming in (False, True)
}


def required_capabilities(request: ChatRequest, streaming: bool) -> frozenset[str]:
    response_format = request.response_format
    json = response_format is not None and response_format.type is not ResponseFormatType.TEXT
    return _CAPABILITY_SETS[bool(request.tools), json, bool(streaming)]


def run_checks(ctx: RankContext, limits: RequestLimits) -> tuple[list[int], list[str | None]]:
    """(indices still eligible, reason per candidate or None). Health is not checked here."""
    reasons, alive = _categorical(ctx.table, limits)
    # The per-request checks in order, each only if it can exclude anything for this request.
    if alive and limits.allowed_models is not None:
        alive = key_access(alive, ctx, limits, reasons)
    if alive and limits.allowed_providers:
        alive = allowed_providers(alive, ctx, limits, reasons)
    if alive and limits.denied_providers:
        alive = denied_providers(alive, ctx, limits, reasons)
    if alive and limits.tokens_needed > ctx.table.smallest_context_window:
        alive = context_window(alive, ctx, limits, reasons)
    requested_max_output = limits.requested_max_output
    if alive and requested_max_output is not None and requested_max_output > ctx.table.smallest_max_output:
        alive = output_limit(alive, ctx, limits, reasons)
    if alive and limits.min_quality is not None:
        alive = quality_floor(alive, ctx, limits, reasons)
    if alive and limits.max_cost_nanos is not None:
        alive = cost_cap(alive, ctx, limits, reasons)
    if alive and limits.max_p95_s is not None:
        alive = latency_ceiling(alive, ctx, limits, reasons)
    return alive, reasons


# --- categorical checks: memoized per table ---------------------------------------------------
#
# The policy's own exclusions, data sensitivity, task fit and capabilities depend on the request
# only through a few small values (3 sensitivities x 6 tasks x a handful of capability sets), so
# their outcome is computed once per combination and per candidate table, then copied per request.


def _categorical(table: CandidateTable, limits: RequestLimits) -> tuple[list[str | None], list[int]]:
    key = (limits.sensitivity_rank, task_index(limits.task), limits.required_capabilities)
    found = table.exclusion_memo.get(key)
    if found is None:
        reasons = tuple(_categorical_reason(table, i, limits) for i in range(len(table)))
        alive = tuple(i for i, reason in enumerate(reasons) if reason is None)
        found = table.exclusion_memo[key] = (reasons, alive)
    reasons, alive = found
    return list(reasons), list(alive)


def _categorical_reason(table: CandidateTable, i: int, limits: RequestLimits) -> str | None:
    return (
        table.static_reasons[i]
        or _sensitivity_reason(table, i, limits)
        or _task_reason(table, i, limits)
        or _capability_reason(table, i, limits)
    )


def _sensitivity_reason(table: CandidateTable, i: int, limits: RequestLimits) -> str | None:
    if limits.sensitivity_rank <= table.sensitivity_ranks[i]:
        return None
    limit = table.deployments[i].max_sensitivity.value
    return f"data sensitivity {limits.sensitivity.value} above this deployment's limit ({limit})"


def _task_reason(table: CandidateTable, i: int, limits: RequestLimits) -> str | None:
    tasks = table.tasks[i]
    if not tasks or limits.task in tasks:
        return None
    return f"not configured for {limits.task.value} tasks"


def _capability_reason(table: CandidateTable, i: int, limits: RequestLimits) -> str | None:
    missing = limits.required_capabilities - table.capabilities[i]
    if not missing:
        return None
    return f"lacks capability: {', '.join(sorted(missing))}"


# --- per-request checks: over whole columns -----------------------------------------------------
#
# A check takes the candidates still eligible, records a reason for each one it excludes, and
# returns those still eligible. Each is one comprehension over a column (no call per candidate)
# and formats a reason only for the candidates it excludes.


def _exclude(
    alive: list[int], reasons: list[str | None], failing: list[int], describe: Callable[[int], str]
) -> list[int]:
    if not failing:
        return alive
    for i in failing:
        reasons[i] = describe(i)
    return [i for i in alive if reasons[i] is None]


def key_access(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    allowed = limits.allowed_models or frozenset()
    keys, models = ctx.table.keys, ctx.table.models
    failing = [i for i in alive if keys[i] not in allowed and models[i] not in allowed]
    if not isinstance(allowed, KeyAllowList):
        return _exclude(alive, reasons, failing, lambda i: _model_not_allowed(models[i]))
    regions = ", ".join(sorted(allowed.regions))

    def describe(i: int) -> str:
        # The model rule first: a model the key may not use is that, in whatever region.
        if allowed.excluded_by_model(models[i], keys[i]):
            return _model_not_allowed(models[i])
        region = ctx.table.deployments[i].region
        return f"region {region or 'unknown'!r} not in this API key's regions ({regions})"

    return _exclude(alive, reasons, failing, describe)


def _model_not_allowed(model: str) -> str:
    return f"model {model!r} not allowed for this API key"


def allowed_providers(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    providers, allowed = ctx.table.providers, limits.allowed_providers
    failing = [i for i in alive if providers[i] not in allowed]
    return _exclude(
        alive, reasons, failing, lambda i: f"provider {providers[i]!r} not in the request's allowed_providers"
    )


def denied_providers(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    providers, denied = ctx.table.providers, limits.denied_providers
    failing = [i for i in alive if providers[i] in denied]
    return _exclude(
        alive, reasons, failing, lambda i: f"provider {providers[i]!r} in the request's denied_providers"
    )


def context_window(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    windows, needed = ctx.table.context_windows, limits.tokens_needed
    failing = [i for i in alive if windows[i] < needed]
    if not failing:
        return alive
    detail = f"prompt ~{limits.prompt_tokens}"
    if limits.requested_max_output:
        detail += f" + max output {limits.requested_max_output}"
    return _exclude(
        alive, reasons, failing, lambda i: f"context window {windows[i]} < {needed} tokens needed ({detail})"
    )


def output_limit(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    maxima, requested = ctx.table.max_outputs, limits.requested_max_output or 0
    failing = [i for i in alive if requested > maxima[i]]
    return _exclude(
        alive,
        reasons,
        failing,
        lambda i: f"max_output_tokens {requested} above this model's limit ({maxima[i]})",
    )


def quality_floor(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    """Excludes the candidates whose known quality estimate is below the floor. Exempt:
    - pinned candidates (the table's first `pinned_count`): a pin is the caller's decision, and a
      floor is there to choose a good enough model for a caller who did not choose one;
    - candidates whose quality is unknown (no configured prior, and no feedback for the task):
      unknown is not bad, and excluding them would also keep them from ever being learned."""
    table = ctx.table
    floor_z: float | None = getattr(ctx.quality_view, "floor_z", None)  # PosteriorQualityView
    if floor_z is not None:
        return _posterior_floor(alive, ctx, limits, reasons, floor_z)
    qualities, floor = ctx.qualities, limits.min_quality or 0.0
    index = task_index(limits.task)
    if qualities is table.quality_by_task[index]:  # the priors: no QualityView
        return _prior_floor(alive, table, index, limits, reasons)
    failing = [i for i in alive if qualities[i] < floor]
    if failing and table.pinned_count:
        failing = [i for i in failing if i >= table.pinned_count]
    if failing and table.unknown_quality:
        known = ctx.quality_known
        failing = [i for i in failing if known[i]]
    if not failing:
        return alive
    # A floor often excludes many candidates: format the common part once, no call per candidate.
    suffix = f" below floor {floor:.2f} for {limits.task.value}"
    for i in failing:
        reasons[i] = f"quality {qualities[i]:.2f}{suffix}"
    return [i for i in alive if reasons[i] is None]


def _posterior_floor(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None], floor_z: float
) -> list[int]:
    """`quality_floor` against a learning view's posteriors: a candidate is excluded only when
    even its optimistic estimate (mean + floor_z sd) is below the floor. So a candidate with a
    wrong or no prior stays a candidate (for probes: the `learned` strategy exploits only means
    that clear the floor) until its scores show it is below, and one excluded on scores becomes
    a candidate again as they decay (the posterior widens back toward the prior). Pins are exempt."""
    floor = limits.min_quality or 0.0
    posteriors, pinned = ctx.posteriors, ctx.table.pinned_count
    failing = [i for i in alive if i >= pinned and posteriors[i].upper(floor_z) < floor]
    if not failing:
        return alive
    suffix = f" below floor {floor:.2f} for {limits.task.value}"
    for i in failing:
        p = posteriors[i]
        reasons[i] = f"quality {p.mean:.2f} +- {p.sd:.2f} ({p.count:.0f} scores){suffix}"
    return [i for i in alive if reasons[i] is None]


# Floors come from policies and from callers' hints: usually a handful per table, but bounded.
_FLOOR_MEMO_SIZE = 64


def _prior_floor(
    alive: list[int], table: CandidateTable, task_index: int, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    """`quality_floor` against the table's configured priors, which only change with the config:
    which candidates a floor rules out for a task, and the reason text, are computed once per
    (task, floor) and table instead of per request (formatting a float per candidate is the
    costly part of this check). The exemptions of `quality_floor` are baked into the memo: pins
    and unknown priors belong to the table too."""
    floor = limits.min_quality or 0.0
    key = (task_index, floor)
    below = table.floor_memo.get(key)
    if below is None:
        if len(table.floor_memo) >= _FLOOR_MEMO_SIZE:
            table.floor_memo.clear()
        suffix = f" below floor {floor:.2f} for {limits.task.value}"
        pinned, known = table.pinned_count, table.quality_known
        below = table.floor_memo[key] = tuple(
            f"quality {quality:.2f}{suffix}" if quality < floor and known[i] and i >= pinned else None
            for i, quality in enumerate(table.quality_by_task[task_index])
        )
    still = []
    for i in alive:
        reason = below[i]
        if reason is None:
            still.append(i)
        else:
            reasons[i] = reason
    return still


def cost_cap(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    costs = ctx.cost_nanos
    cap = limits.max_cost_nanos if limits.max_cost_nanos is not None else 0
    failing = [i for i in alive if costs[i] > cap]
    if not failing:
        return alive
    # A cap often excludes most candidates: format the common part once, and no call per candidate;
    # candidates of one price tier have the same cost, so each distinct cost is formatted once.
    suffix = f" nano-USD above cap {cap}"
    by_cost: dict[int, str] = {}
    for i in failing:
        cost = costs[i]
        reason = by_cost.get(cost)
        if reason is None:
            reason = by_cost[cost] = f"estimated cost {cost}{suffix}"
        reasons[i] = reason
    return [i for i in alive if reasons[i] is None]


def latency_ceiling(
    alive: list[int], ctx: RankContext, limits: RequestLimits, reasons: list[str | None]
) -> list[int]:
    p95s, ceiling = ctx.p95s, limits.max_p95_s or 0.0
    # A deployment without data yet gets the benefit of the doubt.
    failing = [i for i in alive if (p95 := p95s[i]) is not None and p95 > ceiling]
    return _exclude(
        alive, reasons, failing, lambda i: f"p95 {p95s[i] or 0.0:.2f}s above policy ceiling {ceiling:.2f}s"
    )


def _stricter_sensitivity(hint: DataSensitivity, floor: DataSensitivity | None) -> DataSensitivity:
    if floor is None or sensitivity_rank(hint) >= sensitivity_rank(floor):
        return hint
    return floor


def _larger(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _smaller(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
