"""Routing decision time: p50/p99 in microseconds with 5 and 50 candidates.

Not a test: prints a table and writes bench/results/routing.json. Bounded loops in one process,
nothing but the decision in the timed region. Each scenario routes a fixed pool of requests
through `Router.route` exactly as the engine will: policy lookup, draws, task classification (or
the caller's hint), token and cost estimates, filters, health, strategies, and the full `Route`
explanation (a view per candidate). Health and latency come from a warmed-up `LiveState` with a
couple of deployments in cooldown.

Shared machines are noisy (other processes, VM steal time), so each scenario runs in several
rounds, interleaved with the other scenarios; the table shows the median round's p50 and p99 and
the best round's p99, and the JSON keeps every round.

    .venv/bin/python bench/routing.py [--iterations N] [--rounds R] [--drill | --drill-only]

`--drill` adds the failover drills (`router_service.sim.drill`, the same ones
tests/integration/test_drills.py asserts on, here with larger counts): a real router on a free
port, three real simulated providers over HTTP, load over real gRPC, sim-a failing. It prints
success rate, requests reaching the failing deployment after the fault, caller p50/p99 while it
hangs (with and without hedging) and time to recovery, and writes them under "drills" in the same
JSON. About 90 s; every drill is also bounded by a duration, so the section stays under 2 min.
`--drill-only` skips the decision timing and keeps the decision rows already in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path and bench/consumers.py would shadow
# the `consumers` package (imported by the router app, which the drills start).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import (
    ChatRequest,
    DataSensitivity,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    RoutingHints,
    TaskType,
    ToolSpec,
)
from router_service.errors import ErrorClass, RouterError
from router_service.resilience.live_state import LiveState
from router_service.routing.learning import QualityLearner
from router_service.routing.policy import HedgeConfig, Policy
from router_service.routing.router import Router
from router_service.routing.strategies import StrategyParams
from router_service.sim import drill
from router_service.sim.recovery_drill import recovery_drill

RESULTS = Path(__file__).parent / "results" / "routing.json"
SIZES = (5, 50)
PROVIDERS = ("alpha", "beta", "gamma", "delta", "epsilon")
USD_PER_MTOK = (0.15, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)
NOW = 10_000.0
WARMUP_ROUNDS = 20


def build_catalog(size: int, rng: random.Random) -> Catalog:
    return Catalog(deployments=tuple(build_deployment(i, rng) for i in range(size)), aliases={})


def build_deployment(i: int, rng: random.Random) -> Deployment:
    input_nanos = int(rng.choice(USD_PER_MTOK) * 1_000_000_000)
    return Deployment(
        provider=PROVIDERS[i % len(PROVIDERS)],
        model=f"model-{i // len(PROVIDERS)}",
        upstream_model=f"upstream-{i}",
        price=Price(input_nanos, input_nanos * 4, input_nanos // 10),
        context_window=rng.choice((8_192, 32_768, 128_000, 200_000)),
        max_output_tokens=rng.choice((4_096, 8_192, 16_384)),
        capabilities=frozenset(rng.sample(("tools", "json", "streaming"), rng.randint(1, 3))),
        max_sensitivity=rng.choice(tuple(DataSensitivity)),
        region=rng.choice(("us", "eu")),
        quality={t: round(rng.uniform(0.4, 0.95), 2) for t in TaskType},
        expected_cached_fraction=rng.choice((0.0, 0.5)),
    )


def build_policies() -> dict[str, Policy]:
    policies = (
        Policy("default", strategy="quality>cost"),
        Policy("cheap", strategy="cost", min_quality=0.5),
        Policy("fast", strategy="latency", hedge=HedgeConfig(enabled=True)),
        Policy("canary", strategy="weighted", params=StrategyParams(weights={"model-0": 95, "model-1": 5})),
        Policy(
            "pii-safe",
            strategy="quality>cost",
            min_sensitivity=DataSensitivity.RESTRICTED,
            regions=frozenset({"eu"}),
        ),
    )
    return {p.name: p for p in policies}


def warm_live_state(catalog: Catalog, rng: random.Random) -> LiveState:
    live = LiveState()
    for d in catalog.deployments:
        base = rng.uniform(0.2, 3.0)
        for k in range(40):
            live.record_success(d.key, base * rng.uniform(0.8, 1.5), base * 0.2, NOW - 50 + k)
    for d in catalog.deployments[1::25]:  # one or two deployments in cooldown
        for k in range(5):
            live.record_failure(d.key, ErrorClass.TIMEOUT, NOW - 5 + k * 0.1)
    return live


PROMPTS = (
    "What are your opening hours on Sunday?",
    "Write a short poem about autumn leaves for our newsletter.",
    "Extract the order number, date and total as JSON from this email: " + "order 1234 " * 30,
    "Why does my python function raise a KeyError? ```def f(d): return d['x']```",
    "Based on the following document, what is the refund window? " + "Lorem ipsum dolor. " * 200,
)
SYSTEM = Message(Role.SYSTEM, "You are a helpful assistant for an online store. " * 4)
LOOKUP_TOOL = ToolSpec(
    "lookup_order", "Find an order by id", {"type": "object", "properties": {"id": {"type": "string"}}}
)


def warm_learner(catalog: Catalog, rng: random.Random) -> QualityLearner:
    """A learner with feedback for most arms (0 to 40 scores each, some arms never scored), as a
    router hours into its day would hold: its posteriors are what `learned` and floors read."""
    learner = QualityLearner()
    for d in catalog.deployments:
        for task in TaskType:
            true = rng.uniform(0.3, 0.95)
            for k in range(rng.choice((0, 3, 10, 40))):
                score = min(max(rng.gauss(true, 0.1), 0.0), 1.0)
                learner.observe(d.key, task.value, score, NOW - 3_600 + k * 60.0, d.quality[task])
    return learner


def chat(prompt: str, hints: RoutingHints, **fields: object) -> ChatRequest:
    return ChatRequest(messages=(SYSTEM, Message(Role.USER, prompt)), hints=hints, **fields)  # type: ignore[arg-type]


def scenarios() -> dict[str, list[ChatRequest]]:
    return {
        "hinted task": [
            chat(p, RoutingHints(policy=name, task_type=TaskType.CHAT))
            for p in PROMPTS
            for name in ("default", "cheap", "fast")
        ],
        "classified task": [chat(p, RoutingHints(policy=name)) for p in PROMPTS for name in build_policies()],
        "tools+json+cost cap": [
            chat(
                p,
                RoutingHints(policy="cheap", max_cost_nanos=cap),
                tools=(LOOKUP_TOOL,),
                response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT),
            )
            for p in PROMPTS
            for cap in (50_000, 500_000)
        ],
    }


# With a learning quality view (`QualityLearner`): the same classified prompts, the learned
# strategy, and quality>cost reading the same posterior means (the cost of the learner alone).
LEARNED_SCENARIOS = {
    "learned": [chat(p, RoutingHints(policy="learned")) for p in PROMPTS],
    "quality>cost, learner": [chat(p, RoutingHints(policy="default")) for p in PROMPTS],
}


@dataclass(frozen=True)
class Round:
    p50_us: float
    p99_us: float
    max_us: float


@dataclass(frozen=True)
class Row:
    candidates: int
    scenario: str
    iterations_per_round: int
    p50_us: float  # median over rounds
    p99_us: float  # median over rounds
    best_p99_us: float
    rounds: list[Round]


def measure(
    router: Router,
    live: LiveState,
    pool: Sequence[ChatRequest],
    iterations: int,
    quality: QualityLearner | None = None,
) -> list[float]:
    for request in list(pool) * WARMUP_ROUNDS:  # compile policies, fill caches, warm the CPU
        decide(router, live, request, quality)
    samples = []
    clock = time.perf_counter_ns
    gc.collect()
    for k in range(iterations):
        request = pool[k % len(pool)]
        start = clock()
        decide(router, live, request, quality)
        samples.append((clock() - start) / 1_000)
    return samples


def decide(router: Router, live: LiveState, request: ChatRequest, quality: QualityLearner | None) -> None:
    # "No eligible candidate" is a decision too (with a reason per candidate): time it the same.
    with contextlib.suppress(RouterError):
        router.route(request, live, NOW, live=live, quality=quality)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(iterations: int, rounds: int) -> list[Row]:
    setups = []
    for size in SIZES:
        rng = random.Random(size)
        catalog = build_catalog(size, rng)
        live = warm_live_state(catalog, rng)
        learner = warm_learner(catalog, rng)
        policies = build_policies() | {"learned": Policy("learned", strategy="learned")}
        setups.append((size, Router(catalog, policies, "default", seed=1), live, learner))
    results: dict[tuple[int, str], list[Round]] = {}
    for _ in range(rounds):
        for size, router, live, learner in setups:
            runs: list[tuple[str, list[ChatRequest], QualityLearner | None]]
            runs = [(name, pool, None) for name, pool in scenarios().items()]
            runs += [(name, pool, learner) for name, pool in LEARNED_SCENARIOS.items()]
            for scenario, pool, quality in runs:
                samples = measure(router, live, pool, iterations, quality)
                measured = Round(percentile(samples, 0.50), percentile(samples, 0.99), max(samples))
                results.setdefault((size, scenario), []).append(measured)
    return [
        Row(
            candidates=size,
            scenario=scenario,
            iterations_per_round=iterations,
            p50_us=statistics.median(r.p50_us for r in measured),
            p99_us=statistics.median(r.p99_us for r in measured),
            best_p99_us=min(r.p99_us for r in measured),
            rounds=measured,
        )
        for (size, scenario), measured in results.items()
    ]


def print_table(rows: list[Row]) -> None:
    header = f"{'candidates':>10}  {'scenario':<20} {'p50 us':>8} {'p99 us':>8} {'best p99':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.candidates:>10}  {r.scenario:<20} {r.p50_us:>8.1f} {r.p99_us:>8.1f} {r.best_p99_us:>9.1f}")


# --- failover drills ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillRow:
    drill: str
    requests: int
    success_rate: float
    reached_failing: int  # requests that reached sim-a after the fault started
    caller_p50_ms: float
    caller_p99_ms: float
    details: dict[str, Any]


def drill_row(name: str, calls: Sequence[drill.Call], reached: int, **details: Any) -> DrillRow:
    latencies = [c.latency_s for c in calls]
    return DrillRow(
        drill=name,
        requests=len(calls),
        success_rate=round(drill.success_rate(calls), 5),
        reached_failing=reached,
        caller_p50_ms=round(drill.percentile(latencies, 0.5) * 1000, 1),
        caller_p99_ms=round(drill.percentile(latencies, 0.99) * 1000, 1),
        details=details,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def run_drills() -> list[DrillRow]:
    rows = []
    # 1. One of three deployments of one model fails hard from the start.
    for fault, label in (({"error_rate": 1.0}, "500s"), ({"hang_rate": 1.0}, "hangs")):
        async with drill.started_sims() as sims:
            success = await drill.success_rate_drill(sims, fault, requests=10_000, concurrency=32, max_s=22.0)
        rows.append(drill_row(f"1 sim-a {label} from the start", success.calls, success.reached_failing))
    # 2. sim-a starts answering 500s: requests reaching it after the fault (default resilience).
    for concurrency, requests in ((1, 1_000), (32, 3_000)):
        for repetition in range(3):
            async with drill.started_sims() as sims:
                breaker = await drill.breaker_drill(
                    sims, concurrency=concurrency, requests=requests, max_s=4.0
                )
            rows.append(
                drill_row(
                    f"2 sim-a 500s, {concurrency} caller(s) #{repetition + 1}",
                    breaker.calls,
                    breaker.reached_after_fault,
                    allowed_fails=breaker.allowed_fails,
                )
            )
    # 3. sim-a hangs after a warm-up: cut at 4 x P95, fallback or hedge.
    hang_runs: list[tuple[str, bool, dict[str, Any]]] = [
        ("3 sim-a hangs, no hedging", False, {}),
        ("3 sim-a hangs, hedging", True, {}),
        ("3 sim-a hangs, hedging, retry budget 1.0", True, {"retry_budget_ratio": 1.0}),
    ]
    for name, hedge, resilience in hang_runs:
        async with drill.started_sims() as sims:
            hang = await drill.hang_drill(
                sims, hedge=hedge, concurrency=32, warm_s=2.0, fault_s=5.0, resilience=resilience
            )
        rows.append(
            drill_row(
                name,
                hang.calls,
                hang.reached,
                attempt_timeout_ms=_ms(hang.attempt_timeout_s),
                warm_p95_ms=_ms(hang.warm_p95_s),
                longest_attempt_on_failing_ms=_ms(hang.longest_failing_attempt_s),
                last_arrival_at_failing_ms=_ms(hang.last_arrival_s),
                caller_max_ms=_ms(max((c.latency_s for c in hang.calls), default=0.0)),
            )
        )
    # 4. sim-a recovers as soon as its breaker opens (cooldown 1 s, ramp 1 s).
    async with drill.started_sims() as sims:
        recovery = await recovery_drill(sims, concurrency=16, duration_s=5.0)
    rows.append(
        drill_row(
            "4 sim-a recovers (cooldown 1 s, ramp 1 s)",
            recovery.calls,
            recovery.reached_while_open,
            cooldown_left_ms=_ms(recovery.cooldown_left_s),
            back_after_ms=_ms(recovery.back_after_s),
            fair_share_after_ms=_ms(recovery.fair_after_s),
        )
    )
    return rows


def print_drills(rows: list[DrillRow]) -> None:
    header = (
        f"{'drill':<44} {'requests':>8} {'success':>9} {'reached':>8} {'p50 ms':>8} {'p99 ms':>8}  details"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in r.details.items())
        print(
            f"{r.drill:<44} {r.requests:>8} {r.success_rate:>9.3%} {r.reached_failing:>8}"
            f" {r.caller_p50_ms:>8.1f} {r.caller_p99_ms:>8.1f}  {details}"
        )
    print(
        "reached: requests reaching sim-a after the fault started (drill 4: while its breaker was"
        " open); p50/p99: callers' latency during the fault"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Routing decision time with 5 and 50 candidates.")
    parser.add_argument("--iterations", type=int, default=5_000, help="timed decisions per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per scenario")
    drills = parser.add_mutually_exclusive_group()
    drills.add_argument("--drill", action="store_true", help="also run the failover drills (~90 s)")
    drills.add_argument("--drill-only", action="store_true", help="only the failover drills")
    args = parser.parse_args(argv)
    payload: dict[str, Any] = {
        "benchmark": "routing_decision",
        "unit": "microseconds",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    if RESULTS.exists():  # keep the section this run does not measure
        previous = json.loads(RESULTS.read_text())
        payload |= {k: previous[k] for k in ("rows", "drills") if k in previous}
    if not args.drill_only:
        rows = run(args.iterations, args.rounds)
        print(f"{args.rounds} rounds x {args.iterations} decisions per scenario")
        print_table(rows)
        payload["rows"] = [dataclasses.asdict(r) for r in rows]
    if args.drill or args.drill_only:
        started = time.monotonic()
        drill_rows = asyncio.run(run_drills())
        print(f"\nfailover drills ({time.monotonic() - started:.0f} s)")
        print_drills(drill_rows)
        payload["drills"] = [dataclasses.asdict(r) for r in drill_rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
