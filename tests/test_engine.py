"""Engine: attempts, fallbacks by error class, timeouts inside the deadline, streaming rules,
and exactly one terminal report per request. Adapters are in-process fakes (no I/O), and time is
the engine's `ManualClock`: timeouts, hedge delays and backoffs happen at their exact virtual
times (`clock.run` jumps to the next timer whenever everything waits), and nothing sleeps."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import pytest

from router_service.clock import ManualClock
from router_service.domain import (
    AttemptOutcome,
    ChatRequest,
    Message,
    ModelSelection,
    Role,
    RoutingHints,
    TextDelta,
)
from router_service.engine import CallContext, Engine, EngineParts, StreamFinish, StreamStart
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    NoEligibleCandidateError,
    ProviderError,
    StreamInterruptedError,
    UpstreamRejectedError,
)
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudgets
from router_service.settings import RuntimeConfig, parse_config
from tests.fakes import HANG, Delayed, FakeAdapter, RecordingObserver, done, error, ok_result

PROVIDERS = ("a", "b", "c")
T = TypeVar("T")


def make_engine(
    *, resilience: dict[str, Any] | None = None, policy: dict[str, Any] | None = None, **routing: Any
) -> tuple[Engine, dict[str, FakeAdapter], RecordingObserver]:
    observer = RecordingObserver()
    engine, adapters = build_engine(engine_config(resilience=resilience, policy=policy, **routing), observer)
    return engine, adapters, observer


def build_engine(config: RuntimeConfig, observer: Any) -> tuple[Engine, dict[str, FakeAdapter]]:
    """An engine over fake adapters on one ManualClock, reporting to `observer`."""
    clock = ManualClock()
    adapters = {p: FakeAdapter(p, clock=clock) for p in PROVIDERS}
    parts = EngineParts(
        live=LiveState(config.live_state),
        budgets=RetryBudgets(),
        clock=clock,
        rng=random.Random(1),
        observer=observer,
    )
    return Engine(config, adapters, parts), adapters  # type: ignore[arg-type]


def engine_config(
    *, resilience: dict[str, Any] | None = None, policy: dict[str, Any] | None = None, **routing: Any
) -> RuntimeConfig:
    return parse_config(
        {
            "routing": {"attempt_timeout_s": 0.2, "first_token_timeout_s": 0.2, **routing},
            # No same-deployment retries unless a test asks: most tests here are about fallbacks.
            "resilience": {"max_retries": 0, "backoff_base_s": 0.001, **(resilience or {})},
            "providers": {p: {"kind": "openai", "base_url": "http://127.0.0.1:9"} for p in PROVIDERS},
            "models": [
                {
                    "name": f"m{p}",
                    "provider": p,
                    "price_per_mtok": {"input": "1", "output": "2"},
                    "context_window": 1000 * (i + 1),
                }
                for i, p in enumerate(PROVIDERS)
            ],
            "policies": {"default": {"models": [f"m{p}" for p in PROVIDERS], **(policy or {})}},
        }
    )


def clock_of(engine: Engine) -> ManualClock:
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    return clock


def run(engine: Engine, awaitable: Awaitable[T]) -> Awaitable[T]:
    """Await on the engine's virtual time."""
    return clock_of(engine).run(awaitable)


def request(**kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=(Message(role=Role.USER, content="hi"),), **kwargs)


def ctx(engine: Engine, deadline_s: float = 5.0) -> CallContext:
    now = engine.clock.monotonic()
    return CallContext(request_id="r", deadline=now + deadline_s, started=now)


async def drain(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


async def test_first_target_answers() -> None:
    engine, _, observer = make_engine()
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.key == "a/ma"
    assert result.cost_nanos == 20_000  # 10 input * 1 USD/Mtok + 5 output * 2 USD/Mtok = 20e-6 USD
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.SUCCESS]
    assert (len(observer.decisions), len(observer.attempts), len(observer.completions), observer.errors) == (
        1,
        1,
        1,
        [],
    )


@pytest.mark.parametrize(
    "cls",
    [
        ErrorClass.OVERLOADED,
        ErrorClass.RATE_LIMITED,
        ErrorClass.CONNECTION,
        ErrorClass.AUTH,
        ErrorClass.BAD_RESPONSE,
        ErrorClass.CONTEXT_LENGTH_EXCEEDED,
        ErrorClass.CONTENT_FILTERED,
        ErrorClass.TIMEOUT,
    ],
)
async def test_falls_back_on_provider_side_errors(cls: ErrorClass) -> None:
    engine, adapters, _ = make_engine()
    adapters["a"].script = [error(cls)]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "b"
    assert [(a.provider, a.error_class) for a in result.attempts] == [("a", cls.value), ("b", "")]


async def test_callers_invalid_request_is_not_retried_elsewhere() -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [error(ErrorClass.INVALID_REQUEST, 400)]
    with pytest.raises(UpstreamRejectedError):
        await run(engine, engine.complete(request(), ctx(engine)))
    assert (adapters["b"].calls, adapters["c"].calls) == (0, 0)
    assert len(observer.errors) == 1 and not observer.completions


@pytest.mark.parametrize("streaming", [False, True])
async def test_nothing_eligible_reports_the_decision_with_each_reason_then_error(streaming: bool) -> None:
    engine, adapters, observer = make_engine()
    denied = request(hints=RoutingHints(denied_providers=frozenset(PROVIDERS)))
    with pytest.raises(NoEligibleCandidateError):
        if streaming:
            await run(engine, drain(engine.stream(denied, ctx(engine))))
        else:
            await run(engine, engine.complete(denied, ctx(engine)))
    [decision] = observer.decisions
    assert (decision.chosen, decision.chain, decision.policy) == ("", (), "default")
    assert [(c.provider, c.eligible, c.exclusion_reason) for c in decision.candidates] == [
        (p, False, f"provider {p!r} in the request's denied_providers") for p in PROVIDERS
    ]
    assert all(c.estimated_cost_nanos > 0 for c in decision.candidates)
    assert len(observer.errors) == 1 and not observer.attempts and not observer.completions
    assert sum(a.calls for a in adapters.values()) == 0


async def test_all_failing_reports_each_failure_in_order() -> None:
    engine, adapters, observer = make_engine()
    for p in PROVIDERS:
        adapters[p].script = [error(ErrorClass.OVERLOADED, 503)]
    with pytest.raises(AllAttemptsFailedError) as caught:
        await run(engine, engine.complete(request(), ctx(engine)))
    assert [t for t, _ in caught.value.failures] == ["a/ma", "b/mb", "c/mc"]
    assert [i for i, _ in observer.attempts] == [0, 1, 2]
    assert len(observer.errors) == 1


async def test_hung_attempt_times_out_is_cancelled_and_falls_back() -> None:
    engine, adapters, _ = make_engine()
    adapters["a"].script = [HANG]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "b"
    assert result.attempts[0].error_class == ErrorClass.TIMEOUT.value
    assert adapters["a"].cancelled == 1


async def test_attempt_timeout_is_cut_to_the_callers_deadline() -> None:
    engine, adapters, observer = make_engine(attempt_timeout_s=10)
    adapters["a"].script = [HANG]
    started = engine.clock.monotonic()
    with pytest.raises(DeadlineExceededError):
        await run(engine, engine.complete(request(), ctx(engine, deadline_s=0.1)))
    assert engine.clock.monotonic() - started == pytest.approx(0.1)  # the deadline, not the 10 s
    assert adapters["b"].calls == 0  # no attempt outlives the deadline
    assert len(observer.errors) == 1


async def test_pinned_model_without_fallback_fails_alone() -> None:
    engine, adapters, _ = make_engine()
    adapters["b"].script = [error(ErrorClass.OVERLOADED)]
    with pytest.raises(AllAttemptsFailedError):
        pinned = request(selection=ModelSelection(model="mb", disable_fallback=True))
        await run(engine, engine.complete(pinned, ctx(engine)))
    assert (adapters["a"].calls, adapters["c"].calls) == (0, 0)


async def test_caller_cancellation_cancels_upstream_and_reports_once() -> None:
    engine, adapters, observer = make_engine(attempt_timeout_s=10)
    adapters["a"].script = [HANG]
    task = asyncio.create_task(engine.complete(request(), ctx(engine)))
    await clock_of(engine).advance(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert adapters["a"].cancelled == 1
    assert [a.outcome for _, a in observer.attempts] == [AttemptOutcome.CANCELLED]
    assert len(observer.errors) == 1 and isinstance(observer.errors[0], asyncio.CancelledError)


async def collect(engine: Engine, **kwargs: Any) -> list[Any]:
    return await run(engine, drain(engine.stream(request(**kwargs), ctx(engine))))


async def test_stream_start_deltas_finish() -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [[TextDelta("he"), TextDelta("llo"), done()]]
    items = await collect(engine)
    assert isinstance(items[0], StreamStart) and isinstance(items[-1], StreamFinish)
    assert [i.text for i in items[1:-1]] == ["he", "llo"]
    assert items[-1].cost_nanos == 20_000
    assert len(observer.completions) == 1 and not observer.errors


async def test_stream_falls_back_before_first_event() -> None:
    engine, adapters, _ = make_engine()
    adapters["a"].script = [[HANG]]  # no first token within first_token_timeout_s
    items = await collect(engine)
    assert items[0].deployment.provider == "b"
    assert adapters["a"].cancelled == 1
    assert [a.error_class for a in items[-1].attempts] == [ErrorClass.TIMEOUT.value, ""]


async def test_stream_failure_after_first_token_is_interrupted_not_retried() -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [[TextDelta("partial"), error(ErrorClass.CONNECTION)]]
    received: list[Any] = []

    async def consume() -> None:
        async for item in engine.stream(request(), ctx(engine)):
            received.append(item)

    with pytest.raises(StreamInterruptedError) as caught:
        await run(engine, consume())
    assert caught.value.delivered_chars == len("partial")
    assert adapters["b"].calls == 0
    assert not any(isinstance(i, StreamFinish) for i in received)
    assert len(observer.errors) == 1 and not observer.completions


async def test_consumer_stopping_after_finish_is_not_an_error() -> None:
    engine, _, observer = make_engine()
    stream = engine.stream(request(), ctx(engine))
    while not isinstance(await run(engine, anext(stream)), StreamFinish):
        pass
    await stream.aclose()
    assert len(observer.completions) == 1 and observer.errors == []


async def test_consumer_leaving_mid_stream_cancels_upstream() -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [[TextDelta("x"), HANG]]
    stream = engine.stream(request(), ctx(engine))
    assert isinstance(await run(engine, anext(stream)), StreamStart)
    assert isinstance(await run(engine, anext(stream)), TextDelta)
    await stream.aclose()
    assert adapters["a"].cancelled == 1
    assert [a.outcome for _, a in observer.attempts] == [AttemptOutcome.CANCELLED]
    assert len(observer.errors) == 1


async def test_consumer_leaving_right_after_start_cancels_upstream() -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [[TextDelta("x"), done()]]
    stream = engine.stream(request(), ctx(engine))
    assert isinstance(await run(engine, anext(stream)), StreamStart)
    await stream.aclose()
    assert adapters["a"].cancelled == 1
    assert [a.outcome for _, a in observer.attempts] == [AttemptOutcome.CANCELLED]


async def test_successful_result_passes_through_unchanged() -> None:
    engine, adapters, _ = make_engine()
    adapters["a"].script = [ok_result("exact text")]
    assert (await run(engine, engine.complete(request(), ctx(engine)))).result.message.content == "exact text"


async def test_transient_error_is_retried_on_the_same_deployment_first() -> None:
    engine, adapters, _ = make_engine(resilience={"max_retries": 2})
    adapters["a"].script = [error(ErrorClass.OVERLOADED, 503), error(ErrorClass.CONNECTION)]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert [(a.provider, a.error_class) for a in result.attempts] == [
        ("a", "overloaded"),
        ("a", "connection"),
        ("a", ""),
    ]
    assert adapters["b"].calls == 0


async def test_rate_limit_is_not_retried_in_place_but_falls_back() -> None:
    engine, adapters, _ = make_engine(resilience={"max_retries": 2})
    adapters["a"].script = [error(ErrorClass.RATE_LIMITED, 429)]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert [a.provider for a in result.attempts] == ["a", "b"]


async def test_context_length_skips_deployments_whose_window_is_not_larger() -> None:
    engine, adapters, _ = make_engine()
    adapters["a"].script = [error(ErrorClass.CONTEXT_LENGTH_EXCEEDED, 400)]
    adapters["b"].script = [error(ErrorClass.CONTEXT_LENGTH_EXCEEDED, 400)]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert [a.provider for a in result.attempts] == ["a", "b", "c"]  # windows 1000 < 2000 < 3000


async def test_breaker_opens_after_allowed_fails_and_traffic_moves_away() -> None:
    engine, adapters, _ = make_engine(resilience={"breaker": {"allowed_fails": 2, "cooldown_s": 60}})
    adapters["a"].script = [error(ErrorClass.OVERLOADED, 500)] * 10
    for _ in range(6):
        await run(engine, engine.complete(request(), ctx(engine)))
    assert adapters["a"].calls == 3  # allowed_fails + 1, then the breaker is open: no more reach it
    decision = engine.route(request())
    excluded = {c.key: c.exclusion_reason for c in decision.candidates if not c.eligible}
    assert excluded.get("a/ma")  # excluded, with a reason


async def test_retry_budget_caps_retries_during_an_outage() -> None:
    engine, adapters, _ = make_engine(
        resilience={
            "max_retries": 3,
            "retry_budget_ratio": 0.0,
            "retry_budget_min_per_s": 0.0,
            "breaker": {"allowed_fails": 1000},
        }
    )
    adapters["a"].script = [error(ErrorClass.OVERLOADED, 500)] * 100
    for _ in range(10):
        result = await run(engine, engine.complete(request(), ctx(engine)))
        assert result.deployment.provider == "b"
    assert adapters["a"].calls == 10  # an empty budget means no retries at all, only fallbacks


async def test_retry_is_not_sent_when_the_breaker_opened_during_its_backoff() -> None:
    engine, adapters, _ = make_engine(resilience={"max_retries": 1})
    # Retry-After is the backoff's floor: the retry sleeps 0.3 s.
    adapters["a"].script = [ProviderError(ErrorClass.OVERLOADED, "busy", status_code=503, retry_after_s=0.3)]
    clock = clock_of(engine)
    task = asyncio.create_task(engine.complete(request(), ctx(engine)))
    await clock.advance(0.1)
    assert adapters["a"].calls == 1  # failed, now backing off
    now = clock.monotonic()
    for _ in range(3):  # other requests' failures: with this one, more than allowed_fails (3)
        engine.live.record_failure("a/ma", ErrorClass.OVERLOADED, now)
    result = await clock.run(task)
    assert adapters["a"].calls == 1  # the open breaker refused the retry at send time
    assert [a.provider for a in result.attempts] == ["a", "b"]
    # The fallback went when the retry would have: after the whole backoff, not when the breaker opened.
    assert result.attempts[1].started_at_unix_s - result.attempts[0].started_at_unix_s == pytest.approx(0.3)


def hedging_engine(**routing: Any) -> tuple[Engine, dict[str, FakeAdapter], RecordingObserver]:
    return make_engine(policy={"hedge": {"enabled": True, "delay_s": 0.05}}, **routing)


async def test_hung_first_choice_is_hedged_and_the_loser_left_to_time_out() -> None:
    engine, adapters, observer = hedging_engine(attempt_timeout_s=0.5)
    clock = clock_of(engine)
    adapters["a"].script = [HANG]
    started = clock.monotonic()
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert clock.monotonic() - started == pytest.approx(0.05)  # the hedge answered, not the 0.5 s timeout
    assert result.deployment.provider == "b"
    # The caller's response shows the loser as cancelled (it did not wait for it), after the winner.
    assert [(a.provider, a.outcome) for a in result.attempts] == [
        ("b", AttemptOutcome.SUCCESS),
        ("a", AttemptOutcome.CANCELLED),
    ]
    hedge, first = result.attempts
    assert hedge.started_at_unix_s - first.started_at_unix_s == pytest.approx(0.05)  # sent at delay_s
    # "a" has answered nothing since the loser was sent: it runs on until its own timeout, which
    # then counts against a's health, and only then is its attempt reported, as what it was.
    assert adapters["a"].cancelled == 0 and engine.live.in_flight("a/ma") == 1
    assert [(i, a.provider, a.outcome) for i, a in observer.attempts] == [(0, "b", AttemptOutcome.SUCCESS)]
    await clock.advance(0.6)
    assert adapters["a"].cancelled == 1 and engine.live.in_flight("a/ma") == 0
    snapshots = {s.key: s for s in engine.live.snapshot(clock.monotonic())}
    assert snapshots["a/ma"].errors_by_class == {"timeout": 1}
    late_index, late = observer.attempts[-1]
    assert (late_index, late.provider, late.outcome, late.error_class) == (
        1,
        "a",
        AttemptOutcome.ERROR,
        ErrorClass.TIMEOUT.value,
    )
    assert late.unused_usage is None and late.unused_cost_nanos == 0
    assert late.latency_s == pytest.approx(0.5)  # its own attempt timeout, to the tick
    assert len(observer.attempts) == 2 and len(observer.completions) == 1


async def test_hedge_loser_that_answers_after_the_winner_reports_its_unused_cost() -> None:
    engine, adapters, observer = hedging_engine(attempt_timeout_s=2)
    adapters["a"].script = [Delayed(0.2, ok_result("late"))]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "b"
    assert result.cost_nanos == 10 * 1_000 + 5 * 2_000  # b's answer: 10 in, 5 out at $1/$2 per Mtok
    assert [i for i, _ in observer.attempts] == [0]
    await clock_of(engine).advance(0.3)
    late_index, late = observer.attempts[-1]
    # The loser is the first choice, raced from when the hedge was sent: marked hedged too.
    assert (late_index, late.provider, late.outcome, late.hedged) == (1, "a", AttemptOutcome.SUCCESS, True)
    # The upstream billed the answer nobody used: its usage and exact cost go with the attempt,
    # not the completion (which holds only the answer the caller got).
    assert late.unused_usage == ok_result().usage
    assert late.unused_cost_nanos == 10 * 1_000 + 5 * 2_000
    assert engine.live.in_flight("a/ma") == 0


async def test_hung_deployment_behind_hedging_is_taken_out_of_rotation() -> None:
    engine, adapters, _ = hedging_engine(attempt_timeout_s=0.2)
    adapters["a"].script = [HANG] * 10
    for _ in range(4):  # allowed_fails (3) + 1 lost races, each later timing out
        assert (await run(engine, engine.complete(request(), ctx(engine)))).deployment.provider == "b"
    await clock_of(engine).advance(0.3)
    assert adapters["a"].calls == 4 and adapters["a"].cancelled == 4
    assert (await run(engine, engine.complete(request(), ctx(engine)))).attempts[0].provider == "b"
    assert adapters["a"].calls == 4  # the breaker is open


async def test_hedge_loser_is_cancelled_at_once_while_its_deployment_keeps_answering() -> None:
    engine, adapters, observer = hedging_engine(attempt_timeout_s=5)
    adapters["a"].script = [HANG]
    clock = clock_of(engine)
    task = asyncio.create_task(engine.complete(request(), ctx(engine)))
    await clock.advance(0.02)
    engine.live.record_success("a/ma", 0.01, None, clock.monotonic())  # another request's answer
    result = await clock.run(task)
    assert result.deployment.provider == "b"
    assert adapters["a"].cancelled == 1 and engine.live.in_flight("a/ma") == 0
    outcomes = {(a.provider, a.outcome, a.hedged) for _, a in observer.attempts}
    assert outcomes == {("a", AttemptOutcome.CANCELLED, True), ("b", AttemptOutcome.SUCCESS, True)}


async def test_aclose_cancels_hedge_losers_still_running() -> None:
    engine, adapters, _ = hedging_engine(attempt_timeout_s=5)
    adapters["a"].script = [HANG]
    await run(engine, engine.complete(request(), ctx(engine)))
    assert adapters["a"].cancelled == 0
    await engine.aclose()
    assert adapters["a"].cancelled == 1 and engine.live.in_flight("a/ma") == 0


async def test_fast_first_choice_is_not_hedged() -> None:
    engine, adapters, observer = make_engine(policy={"hedge": {"enabled": True, "delay_s": 0.5}})
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "a" and adapters["b"].calls == 0
    assert [(a.provider, a.hedged) for _, a in observer.attempts] == [("a", False)]  # it ran alone


async def test_first_choice_winning_a_hedge_race_is_marked_hedged() -> None:
    engine, adapters, observer = hedging_engine(attempt_timeout_s=2)
    adapters["a"].script = [Delayed(0.1, ok_result("first"))]
    adapters["b"].script = [HANG]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "a"
    # b had answered nothing since it was sent: it is left to its timeout, so only a's event so far.
    assert [(a.provider, a.outcome, a.hedged) for _, a in observer.attempts] == [
        ("a", AttemptOutcome.SUCCESS, True)
    ]
    await engine.aclose()
    assert [(a.provider, a.hedged) for _, a in observer.attempts] == [("a", True), ("b", True)]


async def test_stream_stall_after_first_token_interrupts() -> None:
    engine, adapters, _ = make_engine(stream_stall_timeout_s=0.05)
    adapters["a"].script = [[TextDelta("x"), HANG]]
    with pytest.raises(StreamInterruptedError) as caught:
        await run(engine, drain(engine.stream(request(), ctx(engine))))
    assert caught.value.error.error_class is ErrorClass.TIMEOUT
    assert adapters["a"].cancelled == 1


@pytest.mark.parametrize("streaming", [False, True])
async def test_adapter_bug_propagates_as_itself_and_leaves_nothing_in_flight(streaming: bool) -> None:
    engine, adapters, observer = make_engine()
    adapters["a"].script = [RuntimeError("adapter bug")]
    with pytest.raises(RuntimeError, match="adapter bug"):
        if streaming:
            await run(engine, drain(engine.stream(request(), ctx(engine))))
        else:
            await run(engine, engine.complete(request(), ctx(engine)))
    assert engine.live.in_flight("a/ma") == 0 and adapters["b"].calls == 0
    assert not observer.attempts and len(observer.errors) == 1  # no outcome to report, one end


async def test_reload_swaps_the_config_and_keeps_what_the_engine_learned() -> None:
    breaker = {"breaker": {"allowed_fails": 1, "cooldown_s": 60}}
    engine, adapters, _ = make_engine(resilience=breaker)
    live = engine.live
    adapters["a"].script = [error(ErrorClass.OVERLOADED, 500)] * 2
    for _ in range(2):  # allowed_fails + 1 failures: a's breaker opens
        assert (await run(engine, engine.complete(request(), ctx(engine)))).deployment.provider == "b"
    # The reload reorders the policy: c before b. a's breaker opened before it and stays open.
    reordered = engine_config(resilience=breaker, policy={"models": ["ma", "mc", "mb"]})
    engine.reconfigure(reordered, adapters)  # type: ignore[arg-type]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert engine.config is reordered and engine.live is live
    assert [a.provider for a in result.attempts] == ["c"]
    assert adapters["a"].calls == 2
