"""Decision time of the `learned` strategy with 50 candidates, while feedback keeps arriving.

Not a test: prints a table and writes bench/results/learned_decision.json. bench/routing.py times
`learned` against a learner that never changes while it is timed, so every decision after the
first reads the cached posterior row. Here a score is filed between decisions (untimed) at a
given rate, as a serving router's Feedback calls do: after each score the next decision re-reads
the posteriors (backoff: each candidate's pooled arm and its region's arm). Same catalog, live
state, warm learner and prompts as bench/routing.py's 50-candidate rows; bounded loops in one
process, several rounds (the table shows the median round's p50 and p99, and the best p99).

    .venv/bin/python bench/learned_decision.py [--iterations N] [--rounds R] [--clock wall|thread]
        [--output PATH]

`--clock thread` times each decision in this thread's CPU time (time.thread_time_ns) instead of
wall time: on a shared, overloaded box a decision preempted half-way otherwise counts the other
processes' time too (p99s of 10-30 ms at load 12-18), which says nothing about the code.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.routing import (
    NOW,
    PROMPTS,
    WARMUP_ROUNDS,
    build_catalog,
    build_policies,
    chat,
    decide,
    percentile,
    warm_learner,
    warm_live_state,
)
from router_service.domain import RoutingHints
from router_service.routing.learning import QualityLearner
from router_service.routing.policy import Policy
from router_service.routing.router import Router

RESULTS = Path(__file__).parent / "results" / "learned_decision.json"
CANDIDATES = 50
# scenario -> (policy, a score filed after every n-th decision; 0: none). The first is the
# reference: bench/routing.py's "classified task" row for one policy, no learner, in this run.
SCENARIOS = {
    "reference: quality>cost, no learner": ("default", 0),
    "learned, no new feedback": ("learned", 0),
    "learned, a score every 5th decision": ("learned", 5),
    "learned, a score every decision": ("learned", 1),
}


CLOCKS = {"wall": time.perf_counter_ns, "thread": time.thread_time_ns}


def measure(iterations: int, policy: str, every: int, seed: int, clock_name: str = "wall") -> list[float]:
    """Microseconds per decision; a score for the chosen deployment filed after every `every`th."""
    rng = random.Random(CANDIDATES)
    catalog = build_catalog(CANDIDATES, rng)
    live, learner = warm_live_state(catalog, rng), warm_learner(catalog, rng)
    policies = build_policies() | {"learned": Policy("learned", strategy="learned")}
    router = Router(catalog, policies, "learned", seed=1)
    pool = [chat(p, RoutingHints(policy=policy)) for p in PROMPTS]
    quality = learner if policy == "learned" else None
    scores = random.Random(seed)
    for request in pool * WARMUP_ROUNDS:
        decide(router, live, request, quality)
    samples: list[float] = []
    clock = CLOCKS[clock_name]
    gc.collect()
    for k in range(iterations):
        request = pool[k % len(pool)]
        start = clock()
        decision = router.route(request, live, NOW, live=live, quality=quality)
        samples.append((clock() - start) / 1_000)
        if every and k % every == 0:
            _score(learner, decision.chosen, decision.task_type.value, scores)
    return samples


def _score(learner: QualityLearner, key: str, region: str, rng: random.Random) -> None:
    learner.observe(key, region, min(max(rng.gauss(0.8, 0.1), 0.0), 1.0), NOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=5_000, help="timed decisions per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in SCENARIOS}
    for r in range(args.rounds):  # interleaved, so a noisy moment hits every scenario alike
        for name, (policy, every) in SCENARIOS.items():
            samples = measure(args.iterations, policy, every, seed=r, clock_name=args.clock)
            rounds[name].append((percentile(samples, 0.50), percentile(samples, 0.99)))
    rows = [
        {
            "candidates": CANDIDATES,
            "scenario": name,
            "iterations_per_round": args.iterations,
            "p50_us": round(statistics.median(p50 for p50, _ in measured), 2),
            "p99_us": round(statistics.median(p99 for _, p99 in measured), 2),
            "best_p99_us": round(min(p99 for _, p99 in measured), 2),
            "rounds": measured,
        }
        for name, measured in rounds.items()
    ]
    print(f"{'scenario (50 candidates)':<38} {'p50 us':>8} {'p99 us':>8} {'best p99':>9}")
    for row in rows:
        print(f"{row['scenario']:<38} {row['p50_us']:>8.1f} {row['p99_us']:>8.1f} {row['best_p99_us']:>9.1f}")
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "learned_decision",
                "unit": "us",
                "clock": args.clock,
                "python": platform.python_version(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
