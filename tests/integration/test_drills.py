"""Failure drills: a real RouterApp over real gRPC in front of three real HTTP sims, with faults
injected through the sims' admin API while load runs. Nothing is mocked; what is asserted is what
callers saw (gRPC responses) and what reached the upstreams (sim request counters).

The drills themselves (config, load, measurement) are in `router_service.sim.drill`, shared with
`bench/routing.py --drill`, which runs 1-4 with larger counts. Each test prints its numbers
(`pytest -s`, or in the output of a failure). Only requirements that are time bounds assert on
time, with slack for a loaded machine but well below what a broken router takes (a multiple of
the attempt timeout, or traffic that never stops).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.sim.drill import (
    Call,
    HangDrill,
    admin,
    breaker_drill,
    chat_request,
    drill_config,
    drive,
    hang_drill,
    percentile,
    running_router,
    share,
    success_rate_drill,
)
from router_service.sim.recovery_drill import recovery_drill
from tests.integration.conftest import Sims


def report(name: str, **numbers: object) -> None:
    print(f"\n[drill] {name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


# --- 1. three deployments of one model, one failing hard from the start ------------------------------


async def test_one_of_three_deployments_answering_500s_callers_still_succeed(sims: Sims) -> None:
    drill = await success_rate_drill(sims, {"error_rate": 1.0}, requests=2000, concurrency=32)
    report("1/500s", requests=len(drill.calls), success=drill.success_rate, reached_a=drill.reached_failing)
    assert len(drill.calls) == 2000
    assert drill.success_rate >= 0.999
    assert drill.reached_failing > 0  # it was tried (and probed again after each cooldown)


async def test_one_of_three_deployments_hanging_callers_still_succeed(sims: Sims) -> None:
    drill = await success_rate_drill(sims, {"hang_rate": 1.0}, requests=2000, concurrency=32)
    report(
        "1/hang",
        requests=len(drill.calls),
        success=drill.success_rate,
        reached_a=drill.reached_failing,
        p99_ms=ms(percentile([c.latency_s for c in drill.calls], 0.99)),
    )
    assert len(drill.calls) == 2000
    assert drill.success_rate >= 0.999
    assert drill.reached_failing > 0


# --- 2. a deployment starts answering 500s ------------------------------------------------------------


async def test_500s_reach_the_deployment_at_most_allowed_fails_plus_one_times(sims: Sims) -> None:
    """One caller at a time: every request that reaches sim-a after the fault starts is counted,
    same-deployment retries included (default config: up to 2 per request)."""
    drill = await breaker_drill(sims, concurrency=1, requests=300)
    report(
        "2/sequential", reached_after_fault=drill.reached_after_fault, success=sum(c.ok for c in drill.calls)
    )
    assert all(c.ok for c in drill.calls)
    assert drill.reached_after_fault <= drill.allowed_fails + 1


async def test_500s_under_concurrent_load_stop_reaching_it_once_the_breaker_opens(sims: Sims) -> None:
    """16 callers: requests already on their way when the breaker opens still arrive, at most one
    per other caller; nothing is sent after it (retries waiting out their backoff included)."""
    concurrency = 16
    drill = await breaker_drill(sims, concurrency=concurrency, requests=300)
    report(
        "2/concurrent", reached_after_fault=drill.reached_after_fault, success=sum(c.ok for c in drill.calls)
    )
    assert all(c.ok for c in drill.calls)
    assert drill.reached_after_fault <= drill.allowed_fails + 1 + (concurrency - 1)


# --- 3. a deployment hangs ------------------------------------------------------------------------------


def _report_hang(name: str, drill: HangDrill) -> None:
    report(
        name,
        requests=len(drill.calls),
        success=sum(c.ok for c in drill.calls),
        warm_p95_ms=ms(drill.warm_p95_s),
        expected_cut_ms=ms(drill.expected_cut_s),
        longest_attempt_on_a_ms=ms(drill.longest_failing_attempt_s),
        reached_a=drill.reached,
        last_arrival_at_a_ms=ms(drill.last_arrival_s),
        caller_p50_ms=ms(drill.caller_latency_s(0.5)),
        caller_p99_ms=ms(drill.caller_latency_s(0.99)),
        caller_max_ms=ms(max(c.latency_s for c in drill.calls)),
    )


async def test_hung_deployment_is_cut_early_and_dropped_and_callers_fall_back(sims: Sims) -> None:
    drill = await hang_drill(sims, hedge=False)
    _report_hang("3/hang", drill)
    cut = drill.longest_failing_attempt_s  # the engine's actual cut
    assert all(c.ok for c in drill.calls)
    # Stuck attempts are given up as timeouts at about 4 x P95, long before the 2 s attempt
    # timeout would fire, and count as failures: the breaker opened on them.
    assert drill.failing_attempts
    assert {(a.outcome, a.error_class) for a in drill.failing_attempts} == {
        (pb.ATTEMPT_OUTCOME_ERROR, pb.ERROR_CLASS_TIMEOUT)
    }
    assert cut <= min(drill.attempt_timeout_s / 2, 2 * drill.expected_cut_s)
    assert "failures in" in drill.failing_exclusion
    # Traffic to it stops within one attempt timeout: the configured one, and in fact within the
    # early cut (plus the send stagger of the requests whose timeouts open the breaker, and a
    # retry's backoff).
    assert drill.last_arrival_s is not None
    assert drill.last_arrival_s <= drill.attempt_timeout_s
    assert drill.last_arrival_s <= max(cut, drill.expected_cut_s) + 0.3
    # Callers wait about one (early-cut) attempt and fall back: p99 is not a multiple of it.
    assert drill.caller_latency_s(0.99) < 2 * cut


async def test_hung_deployment_behind_a_hedging_policy(sims: Sims) -> None:
    """Hedge after the first choice's P95: callers get the hedge's answer. The hung attempts they
    left behind run on to their early cut and count as timeouts, so the deployment is dropped as
    fast as without hedging."""
    drill = await hang_drill(sims, hedge=True)
    _report_hang("3/hang+hedge", drill)
    assert all(c.ok for c in drill.calls)
    # Callers saw the hung attempts as cancelled (hedge won) or, when the retry budget refused a
    # hedge, as timeouts at the early cut.
    assert {(a.outcome, a.error_class) for a in drill.failing_attempts} <= {
        (pb.ATTEMPT_OUTCOME_CANCELLED, pb.ERROR_CLASS_CANCELLED),
        (pb.ATTEMPT_OUTCOME_ERROR, pb.ERROR_CLASS_TIMEOUT),
    }
    assert drill.longest_failing_attempt_s <= 2 * drill.expected_cut_s
    assert "failures in" in drill.failing_exclusion
    assert drill.last_arrival_s is not None
    assert drill.last_arrival_s <= drill.attempt_timeout_s
    assert drill.last_arrival_s <= drill.expected_cut_s + 0.3
    # About the hedge delay (the first choice's P95) plus the hedge's own latency: below the
    # early cut, and certainly not a multiple of it.
    assert drill.caller_latency_s(0.99) < 2 * drill.expected_cut_s


# --- 4. a deployment recovers ---------------------------------------------------------------------------


async def test_recovered_deployment_gets_traffic_again_after_cooldown_and_ramp(sims: Sims) -> None:
    drill = await recovery_drill(sims)
    report(
        "4/recovery",
        requests=len(drill.calls),
        success=sum(c.ok for c in drill.calls),
        cooldown_left_ms=ms(drill.cooldown_left_s),
        reached_while_open=drill.reached_while_open,
        back_after_ms=ms(drill.back_after_s),
        fair_share_after_ms=ms(drill.fair_after_s),
    )
    assert all(c.ok for c in drill.calls)
    assert drill.reached_while_open == 0
    # Traffic again within what was left of the cooldown plus one probe interval (the next
    # request routed to it: milliseconds under this load; 0.3 s allows for a loaded machine).
    assert drill.back_after_s is not None
    assert drill.back_after_s <= drill.cooldown_left_s + 0.3
    # A fair share again once the slow-start ramp has (mostly) run.
    assert drill.fair_after_s is not None
    assert drill.fair_after_s <= drill.cooldown_left_s + drill.ramp_s + 0.5


# --- 5. latency-aware routing -----------------------------------------------------------------------------

LATENCY_WINDOW_S = 4.0


async def test_latency_aware_routing_moves_traffic_off_a_provider_that_slows_down(sims: Sims) -> None:
    """Sims answer in ~20 ms (p99 30 ms) until sim-a's latency triples. The policy treats
    deployments within 50% of the fastest P95 as equally fast, so all three share the load before.
    Measured over exactly one window (resilience.window_s) after the change."""
    config = drill_config(
        sims,
        strategy="latency",
        policy={"params": {"latency_tolerance": 0.5}},
        resilience={"window_s": LATENCY_WINDOW_S, "min_latency_samples": 5},
    )
    async with admin(sims) as adm:
        for name in sims:
            await adm.set_profile(name, latency_ms_p50=20, latency_ms_p99=30)
        async with running_router(config) as router:
            before = await drive(router.stub, concurrency=8, duration_s=2.0)
            await adm.set_profile("sim-a", latency_ms_p50=60, latency_ms_p99=90)
            after = await drive(router.stub, concurrency=8, duration_s=LATENCY_WINDOW_S)
    changed_at = min(c.started for c in after)
    per_second = [
        round(share([c for c in after if k <= c.started - changed_at < k + 1], "sim-a"), 2)
        for k in range(int(LATENCY_WINDOW_S))
    ]
    report(
        "5/latency",
        share_a_before=round(share(before[len(before) // 2 :], "sim-a"), 3),
        share_a_in_the_window_after=round(share(after, "sim-a"), 3),
        share_a_per_second_after=per_second,
        requests_after=len(after),
    )
    assert all(c.ok for c in before + after)
    assert share(before[len(before) // 2 :], "sim-a") >= 0.25  # it had its share before
    assert share(after, "sim-a") <= 0.2  # >= 80% of the traffic went elsewhere within one window


# --- 6. cost-aware routing with a quality floor -------------------------------------------------------------

QUALITY_FLOOR = 0.7
# (name, provider, USD per Mtok in/out, quality per task). Per task, two near-equal cheapest models
# above the floor (within the 10% cost tolerance), cheaper ones below it, dearer ones above it.
# tiny is on a sim that stays healthy, so a fallback to it would succeed if it were ever allowed.
COST_CATALOG = (
    ("tiny", "sim-c", "0.05", "0.20", {"chat": 0.4, "code": 0.4}),
    ("bargain-1", "sim-a", "0.10", "0.40", {"chat": 0.8, "code": 0.5}),
    ("bargain-2", "sim-b", "0.105", "0.42", {"chat": 0.78, "code": 0.55}),
    ("value-1", "sim-b", "0.20", "0.80", {"chat": 0.8, "code": 0.8}),
    ("value-2", "sim-c", "0.21", "0.84", {"chat": 0.75, "code": 0.75}),
    ("premium", "sim-c", "3.00", "12.00", {"chat": 0.95, "code": 0.95}),
)
QUALITY = {name: quality for name, _, _, _, quality in COST_CATALOG}


def _cost_config(sims: Sims) -> dict[str, Any]:
    models = [
        {"name": name, "provider": provider, "price_per_mtok": {"input": i, "output": o}, "quality": q}
        for name, provider, i, o, q in COST_CATALOG
    ]
    config = drill_config(sims, models=models)
    config["policies"] = {"default": {"strategy": "cost", "min_quality": QUALITY_FLOOR, "max_attempts": 5}}
    return config


def _tasks(task: int) -> Callable[[int], pb.CompleteRequest]:
    return lambda _: chat_request(task_type=task)


def _answered_by(calls: Sequence[Call]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in calls:
        counts[c.model or "(failed)"] = counts.get(c.model or "(failed)", 0) + 1
    return counts


def _tried_below_floor(calls: Sequence[Call], task: str) -> list[str]:
    return [a.model for c in calls for a in c.attempts if QUALITY[a.model][task] < QUALITY_FLOOR]


async def test_cost_routing_with_a_quality_floor_never_picks_below_it(sims: Sims) -> None:
    async with admin(sims) as adm, running_router(_cost_config(sims)) as router:
        chat = await drive(router.stub, concurrency=16, count=400, request=_tasks(pb.TASK_TYPE_CHAT))
        code = await drive(router.stub, concurrency=16, count=400, request=_tasks(pb.TASK_TYPE_CODE))
        route = await router.stub.Route(
            pb.RouteRequest(chat=chat_request(task_type=pb.TASK_TYPE_CODE).chat), timeout=5
        )
        # The cheapest ones above the floor start failing: fallbacks must stay above it too.
        await adm.set_profile("sim-a", error_rate=1.0)
        await adm.set_profile("sim-b", error_rate=1.0)
        failing = await drive(router.stub, concurrency=16, count=400, request=_tasks(pb.TASK_TYPE_CHAT))
    report(
        "6/cost",
        chat=_answered_by(chat),
        code=_answered_by(code),
        chat_with_a_b_failing=_answered_by(failing),
    )
    assert all(c.ok for c in chat + code + failing)
    assert _tried_below_floor(chat + failing, "chat") == [] and _tried_below_floor(code, "code") == []
    # Load is spread over the near-equally cheapest above the floor, and only them.
    chat_by, code_by = _answered_by(chat), _answered_by(code)
    assert set(chat_by) == {"bargain-1", "bargain-2"} and min(chat_by.values()) >= 0.4 * len(chat)
    assert set(code_by) == {"value-1", "value-2"} and min(code_by.values()) >= 0.4 * len(code)
    assert set(_answered_by(failing)) <= {"value-2", "premium"}
    # Route says why the others are out.
    excluded = {c.model: c.exclusion_reason for c in route.decision.candidates if not c.eligible}
    assert set(excluded) == {"tiny", "bargain-1", "bargain-2"}
    assert all("quality" in reason for reason in excluded.values())
