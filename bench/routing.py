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

    .venv/bin/python bench/routing.py [--iterations N] [--rounds R]
"""

from __future__ import annotations

import argparse
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
from router_service.routing.policy import HedgeConfig, Policy
from router_service.routing.router import Router
from router_service.routing.strategies import StrategyParams

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


def measure(router: Router, live: LiveState, pool: Sequence[ChatRequest], iterations: int) -> list[float]:
    for request in list(pool) * WARMUP_ROUNDS:  # compile policies, fill caches, warm the CPU
        decide(router, live, request)
    samples = []
    clock = time.perf_counter_ns
    gc.collect()
    for k in range(iterations):
        request = pool[k % len(pool)]
        start = clock()
        decide(router, live, request)
        samples.append((clock() - start) / 1_000)
    return samples


def decide(router: Router, live: LiveState, request: ChatRequest) -> None:
    # "No eligible candidate" is a decision too (with a reason per candidate): time it the same.
    with contextlib.suppress(RouterError):
        router.route(request, live, NOW, live=live)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(iterations: int, rounds: int) -> list[Row]:
    setups = []
    for size in SIZES:
        rng = random.Random(size)
        catalog = build_catalog(size, rng)
        live = warm_live_state(catalog, rng)
        setups.append((size, Router(catalog, build_policies(), "default", seed=1), live))
    results: dict[tuple[int, str], list[Round]] = {}
    for _ in range(rounds):
        for size, router, live in setups:
            for scenario, pool in scenarios().items():
                samples = measure(router, live, pool, iterations)
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Routing decision time with 5 and 50 candidates.")
    parser.add_argument("--iterations", type=int, default=5_000, help="timed decisions per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per scenario")
    args = parser.parse_args(argv)
    rows = run(args.iterations, args.rounds)
    print(f"{args.rounds} rounds x {args.iterations} decisions per scenario")
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "routing_decision",
        "unit": "microseconds",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
