"""What governance costs per request: one `admit` + `settle` round trip, in process, for a caller
with six limits (key: requests, tokens and concurrency per minute; team: a monthly budget in
Europe/Berlin; customer: a rolling-day budget; global: a daily budget), against the in-process
store and against a real redis-server on loopback (one Lua script per call: two round trips per
request). Sequential calls (c=1: p50/p99 of the pair) and 32 concurrent callers (throughput),
the variants back to back in one run. Writes bench/results/limits.json.

    .venv/bin/python bench/limits.py [--requests 3000]

Not the whole gRPC call: bench/overhead.py has no governed variant yet (the request path does
not call the governor yet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity.model import Identity
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate, Level, Limit, Metric
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import LimitsPlan
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.store import LimitStore, MemoryLimitStore

RESULTS = Path(__file__).parent / "results" / "limits.json"
BIG = 10**15  # limits nobody reaches: the benchmark measures admission, not refusals
CALLER = Identity(key_id="k_bench", team="search", customer="acme")
ESTIMATE = Estimate(cost_nanos=2_500_000, tokens=1_500)


def plan() -> LimitsPlan:
    minute = Period(PeriodUnit.MINUTE)
    return LimitsPlan(
        (
            Limit(Level.KEY, Metric.REQUESTS, BIG, minute),
            Limit(Level.KEY, Metric.TOKENS, BIG, minute),
            Limit(Level.KEY, Metric.CONCURRENT, BIG, None),
            Limit(Level.TEAM, Metric.COST, BIG, Period(PeriodUnit.MONTH, "Europe/Berlin")),
            Limit(Level.CUSTOMER, Metric.COST, BIG, Period(PeriodUnit.DAY, rolling=True)),
            Limit(Level.GLOBAL, Metric.COST, BIG, Period(PeriodUnit.DAY)),
        )
    )


async def sequential_us(governor: Governor, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        admission = await governor.admit(CALLER, ESTIMATE)
        await admission.settle(1_234_567, 1_200)
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


async def concurrent_rps(governor: Governor, n: int, concurrency: int) -> float:
    per_worker = n // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            admission = await governor.admit(CALLER, ESTIMATE)
            await admission.settle(1_234_567, 1_200)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - t0)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(store: LimitStore, n: int) -> dict[str, float]:
    governor = Governor(plan(), store)
    await sequential_us(governor, max(200, n // 10))  # warm-up: script load, connections, windows
    samples = await sequential_us(governor, n)
    rps = await concurrent_rps(governor, n, 32)
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(pct(samples, 0.99), 1),
        "mean_us": round(statistics.fmean(samples), 1),
        "max_us": round(max(samples), 1),
        "rps_c32": round(rps),
    }


async def main(n: int) -> dict[str, dict[str, float]]:
    server = EmbeddedRedis(log_path=Path(tempfile.gettempdir()) / "bench-limits-redis.log")
    await server.start()
    try:
        results = {"memory": await measure(MemoryLimitStore(), n)}
        redis_store = RedisLimitStore.from_url(
            server.url, prefix=f"bench-{uuid.uuid4().hex[:6]}:{{limits}}:", timeout_s=5.0
        )
        try:
            results["redis"] = await measure(redis_store, n)
        finally:
            await redis_store.close()
        results["memory_again"] = await measure(MemoryLimitStore(), n)  # drift check: same box, later
    finally:
        await server.stop()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    result = asyncio.run(main(args.requests))
    print(f"{'store':<14}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'rps c=32':>11}")
    for name, row in result.items():
        print(f"{name:<14}{row['p50_us']:>10}{row['p99_us']:>10}{row['mean_us']:>10}{row['rps_c32']:>11}")
    result["config"] = {"requests": args.requests, "limits_per_caller": 6}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
