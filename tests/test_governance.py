"""Budgets and rate limits on the request path: the engine reserves before dispatch, settles the
exact cost and real tokens after, releases on failure and cancellation, reserves for a hedge,
and routes with the downgrade policy past a soft threshold (saying so in the decision). The
governor is the real one over the in-process store (the Redis store runs the same semantics in
tests/limits); adapters are the engine tests' fakes on virtual time."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from router_service.clock import ManualClock
from router_service.domain import (
    AttemptOutcome,
    ChatRequest,
    GenerationParams,
    Message,
    Role,
    RoutingHints,
    TextDelta,
)
from router_service.engine import CallContext, Engine, EngineParts, StreamFinish
from router_service.errors import AllAttemptsFailedError, ErrorClass
from router_service.governance import Governance
from router_service.identity.model import Identity
from router_service.limits.errors import BudgetExceededError, LimitsUnavailableError
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate, Metric
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.store import MemoryLimitStore, StoreUnavailableError
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudgets
from router_service.settings import parse_config
from router_service.telemetry.events import GovernanceEvent, TelemetryEvent
from tests.fakes import HANG, Delayed, FakeAdapter, RecordingObserver, error, ok_result

PROVIDERS = ("a", "b", "c")
TEAM = Identity(key_id="k_1", team="search", customer="acme")
# ok_result/done: 10 input and 5 output tokens at $1/$2 per Mtok
ANSWER_NANOS = 10 * 1_000 + 5 * 2_000
CHEAP = {"input": "0.1", "output": "0.2"}  # c, the downgrade policy's model


class Sink:
    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []

    def publish(self, event: TelemetryEvent) -> None:
        self.events.append(event)

    def governance(self) -> list[GovernanceEvent]:
        return [e.body for e in self.events if isinstance(e.body, GovernanceEvent)]


class Setup:
    def __init__(
        self,
        limits: dict[str, Any],
        policy: dict[str, Any] | None = None,
        store: MemoryLimitStore | None = None,
    ) -> None:
        self.config = parse_config(
            {
                "routing": {"attempt_timeout_s": 2, "first_token_timeout_s": 2},
                "resilience": {"max_retries": 0},
                "providers": {p: {"kind": "openai", "base_url": "http://127.0.0.1:9"} for p in PROVIDERS},
                "models": [
                    {
                        "name": f"m{p}",
                        "provider": p,
                        # c is the cheap one: $0.1/$0.2 per Mtok
                        "price_per_mtok": CHEAP if p == "c" else {"input": "1", "output": "2"},
                        "max_output_tokens": 100,
                    }
                    for p in PROVIDERS
                ],
                "policies": {
                    "default": {"models": ["ma", "mb"], **(policy or {})},
                    "cheap": {"models": ["mc"]},
                },
                "limits": limits,
            }
        )
        self.clock = ManualClock()
        self.adapters = {p: FakeAdapter(p, clock=self.clock) for p in PROVIDERS}
        self.observer = RecordingObserver()
        self.sink = Sink()
        self.store = store or MemoryLimitStore()
        self.plan = self.config.limits.to_plan()
        self.governance = Governance(Governor(self.plan, self.store), self.sink)
        parts = EngineParts(
            live=LiveState(self.config.live_state),
            budgets=RetryBudgets(),
            clock=self.clock,
            rng=random.Random(1),
            observer=self.observer,
            governance=self.governance,
        )
        self.engine = Engine(self.config, self.adapters, parts)  # type: ignore[arg-type]

    def ctx(self, identity: Identity = TEAM) -> CallContext:
        now = self.clock.monotonic()
        return CallContext(request_id="r", deadline=now + 10, started=now, identity=identity)

    async def counts(self, identity: Identity = TEAM) -> dict[str, tuple[int, int]]:
        """(used, reserved) per "metric:entity" of every limit of `identity`, settles landed."""
        await self.governance.aclose()
        return await self.held(identity)

    async def held(self, identity: Identity = TEAM) -> dict[str, tuple[int, int]]:
        """The same, now (settles still running or not)."""
        bounds = self.plan.bounds_for(identity)
        now = time.time()
        checks = build_checks(bounds, windows_of(bounds, now), Estimate(0, 0), 600)
        return {
            b.counter_base: await self.store.read(c.counter, c.oldest_bucket, now)
            for b, c in zip(bounds, checks, strict=True)
        }


def request(max_output: int | None = 50, policy: str = "") -> ChatRequest:
    return ChatRequest(
        messages=(Message(role=Role.USER, content="hi"),),
        params=GenerationParams(max_output_tokens=max_output),
        hints=RoutingHints(policy=policy),
    )


# "hi" is 1 message (4 tokens of overhead) + 1 token of text; 50 output tokens at $1/$2 per Mtok.
PROMPT_TOKENS = 5
WORST_NANOS = PROMPT_TOKENS * 1_000 + 50 * 2_000
TEAM_BUDGET = {
    "budgets": [{"level": "team", "usd": "1.00"}],
    "rate_limits": [{"level": "key", "tokens_per_minute": 100_000, "concurrent": 5}],
}


async def test_a_completion_settles_its_exact_cost_and_real_tokens() -> None:
    s = Setup(TEAM_BUDGET)
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.cost_nanos == ANSWER_NANOS
    counts = await s.counts()
    assert counts["cost:team:search"] == (ANSWER_NANOS, 0)
    assert counts["tokens:key:k_1"] == (15, 0)  # the real 10 + 5, not the reserved 5 + 50
    assert counts["concurrent:key:k_1"] == (0, 0)
    [event] = s.sink.governance()
    assert (event.decision, event.reserved_cost_nanos, event.reserved_tokens) == ("allow", WORST_NANOS, 55)
    assert event.policy == "default" and not event.hedge


async def test_the_reservation_holds_the_worst_case_while_the_request_runs() -> None:
    s = Setup(TEAM_BUDGET)
    s.adapters["a"].script = [Delayed(1.0, ok_result())]
    task = asyncio.ensure_future(s.engine.complete(request(), s.ctx()))
    await s.clock.advance(0.5)
    held = await s.held()
    assert held["cost:team:search"] == (0, WORST_NANOS)
    assert held["concurrent:key:k_1"] == (0, 1)
    await s.clock.advance(1.0)
    await task
    assert (await s.counts())["cost:team:search"] == (ANSWER_NANOS, 0)


async def test_over_a_hard_budget_is_refused_before_any_upstream_call() -> None:
    s = Setup({"budgets": [{"level": "team", "usd": "0.0001"}]})  # 100_000 nanos < the worst case
    with pytest.raises(BudgetExceededError) as caught:
        await s.clock.run(s.engine.complete(request(), s.ctx()))
    exc = caught.value
    assert (exc.entity, exc.metric, exc.limit, exc.asked, exc.current) == (
        "team:search",
        Metric.COST,
        100_000,
        WORST_NANOS,
        0,
    )
    assert all(a.calls == 0 for a in s.adapters.values())
    assert s.observer.errors == [exc] and s.observer.decisions == []
    [event] = s.sink.governance()
    assert (event.decision, event.level, event.entity, event.metric, event.limit, event.asked) == (
        "deny",
        "team",
        "team:search",
        "cost",
        100_000,
        WORST_NANOS,
    )
    assert event.retry_after_s is not None and event.retry_after_s > 0
    assert (await s.counts())["cost:team:search"] == (0, 0)


async def test_a_smaller_request_fits_where_a_larger_one_is_refused() -> None:
    s = Setup({"budgets": [{"level": "team", "usd": "0.0001"}]})
    done_ = await s.clock.run(s.engine.complete(request(max_output=10), s.ctx()))  # worst 25_000
    assert done_.cost_nanos == ANSWER_NANOS


async def test_a_soft_threshold_moves_the_caller_to_the_cheaper_policy_and_says_so() -> None:
    budget = {"level": "team", "usd": "0.0002", "downgrade_at": 0.5, "downgrade_policy": "cheap"}
    s = Setup({"budgets": [budget]})
    # 105_000 of 200_000 reserved: past 50% with this request's own ask -> cheap from the first call
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.deployment.provider == "c"
    decision = done_.decision
    assert decision.policy == "cheap" and decision.downgrade is not None
    assert (decision.downgrade.from_policy, decision.downgrade.entity) == ("default", "team:search")
    assert "50%" in decision.downgrade.reason
    assert s.observer.decisions == [decision]  # the decision event says so too
    [event] = s.sink.governance()
    assert (event.decision, event.entity, event.policy, event.downgrade_policy) == (
        "downgrade",
        "team:search",
        "default",
        "cheap",
    )
    assert (await s.counts())["cost:team:search"] == (10 * 100 + 5 * 200, 0)  # c's exact cost


async def test_under_the_threshold_nothing_moves() -> None:
    budget = {"level": "team", "usd": "1.00", "downgrade_at": 0.8, "downgrade_policy": "cheap"}
    s = Setup({"budgets": [budget]})
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.decision.policy == "default" and done_.decision.downgrade is None


async def test_a_failed_request_releases_its_cost_tokens_and_slot() -> None:
    s = Setup(TEAM_BUDGET)
    s.adapters["a"].script = [error(ErrorClass.OVERLOADED, 503)]
    s.adapters["b"].script = [error(ErrorClass.OVERLOADED, 503)]
    with pytest.raises(AllAttemptsFailedError):
        await s.clock.run(s.engine.complete(request(), s.ctx()))
    counts = await s.counts()
    assert counts["cost:team:search"] == (0, 0)
    assert counts["tokens:key:k_1"] == (0, 0)
    assert counts["concurrent:key:k_1"] == (0, 0)


async def test_a_cancelled_caller_releases_its_reservation() -> None:
    s = Setup(TEAM_BUDGET)
    s.adapters["a"].script = [HANG]
    task = asyncio.ensure_future(s.engine.complete(request(), s.ctx()))
    await s.clock.advance(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counts = await s.counts()
    assert counts["cost:team:search"] == (0, 0) and counts["concurrent:key:k_1"] == (0, 0)


async def test_a_stream_settles_its_real_tokens() -> None:
    s = Setup(TEAM_BUDGET)
    items = [item async for item in s.engine.stream(request(), s.ctx())]
    assert isinstance(items[-1], StreamFinish) and items[-1].cost_nanos == ANSWER_NANOS
    counts = await s.counts()
    assert counts["cost:team:search"] == (ANSWER_NANOS, 0)
    assert counts["tokens:key:k_1"] == (15, 0)


async def test_a_stream_the_caller_leaves_midway_is_released() -> None:
    s = Setup(TEAM_BUDGET)
    s.adapters["a"].script = [[TextDelta("a"), TextDelta("b"), HANG]]
    stream = s.engine.stream(request(), s.ctx())
    async for item in stream:
        if isinstance(item, TextDelta):
            break
    await stream.aclose()
    counts = await s.counts()
    assert counts["cost:team:search"] == (0, 0) and counts["concurrent:key:k_1"] == (0, 0)


async def test_a_hedge_reserves_too_and_its_unused_answer_is_settled() -> None:
    s = Setup(TEAM_BUDGET, policy={"hedge": {"enabled": True, "delay_s": 0.05}})
    s.adapters["a"].script = [Delayed(0.2, ok_result("late"))]
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.deployment.provider == "b"
    events = s.sink.governance()
    assert [(e.decision, e.hedge) for e in events] == [("allow", False), ("allow", True)]
    assert events[1].reserved_cost_nanos == WORST_NANOS  # b's worst case alone
    await s.clock.advance(0.3)  # the loser answers: the upstream billed it, so the budget counts it
    assert s.observer.attempts[-1][1].outcome is AttemptOutcome.SUCCESS
    counts = await s.counts()
    assert counts["cost:team:search"] == (2 * ANSWER_NANOS, 0)
    assert counts["concurrent:key:k_1"] == (0, 0)


async def test_a_refused_hedge_is_not_sent() -> None:
    # Room for one worst case, not two: the first choice is admitted, its hedge is not.
    s = Setup(
        {"budgets": [{"level": "team", "usd": "0.00015"}]},
        policy={"hedge": {"enabled": True, "delay_s": 0.05}},
    )
    s.adapters["a"].script = [Delayed(0.2, ok_result())]
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.deployment.provider == "a" and s.adapters["b"].calls == 0
    assert [(e.decision, e.hedge) for e in s.sink.governance()] == [("allow", False), ("deny", True)]
    assert (await s.counts())["cost:team:search"] == (ANSWER_NANOS, 0)


async def test_a_caller_no_limit_applies_to_costs_nothing_and_publishes_nothing() -> None:
    s = Setup({"budgets": [{"level": "team", "entity": "other", "usd": "1.00"}]})
    done_ = await s.clock.run(s.engine.complete(request(), s.ctx()))
    assert done_.cost_nanos == ANSWER_NANOS and s.sink.governance() == []
    assert s.governance.pending == 0


class DownStore(MemoryLimitStore):
    """The in-process store, unreachable for reserves (a stopped real Redis is in tests/limits)."""

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("connection refused")


@pytest.mark.parametrize(
    ("policy", "decision"), [("fail_closed", "deny_store_unavailable"), ("fail_open", "allow_uncounted")]
)
async def test_a_store_outage_follows_the_failure_policy_and_is_an_event(policy: str, decision: str) -> None:
    s = Setup({"budgets": [{"level": "team", "usd": "1.00", "on_store_failure": policy}]}, store=DownStore())
    if policy == "fail_closed":
        with pytest.raises(LimitsUnavailableError):
            await s.clock.run(s.engine.complete(request(), s.ctx()))
    else:
        assert (await s.clock.run(s.engine.complete(request(), s.ctx()))).cost_nanos == ANSWER_NANOS
    assert [e.decision for e in s.sink.governance()] == [decision]
