"""Where governance's hot-path cost goes, split by stage, for two source trees in one run.

    .venv/bin/python bench/governance.py                       # this tree alone
    .venv/bin/python bench/governance.py --before /tmp/old     # + an older tree (git archive of a
                                                               #   commit's router_service/)
    .venv/bin/python bench/governance.py --without-hiredis     # + this tree with hiredis hidden
                                                               #   (redis-py's pure-Python parser)

The caller has the limits of bench/overhead.py's governed rows (auth off, so the global level
binds): a monthly budget and requests/tokens per minute and concurrency, four counters. Stages,
each per request, in a worker process per tree (PYTHONPATH=<tree>), the trees' workers interleaved
round by round so the shared machine's noise hits both alike:

- plan         the pure part of admit and settle: bounds, windows, checks, verdict, settlements
- store        the store's reserve + settle with prebuilt checks (memory; redis on loopback); the
               caller waits for the reserve, the settle runs on its own (as governance's does)
- governance   Governance.admit + settle as the engine calls them (events to a null sink, the
               settle off the caller's path), on each store

For each: CPU microseconds per request with 32 concurrent callers (what costs throughput: the
router is one process on one core), and at c=1 the p50 of the caller's wait (admit only for
governance: its settle is off the path). One real redis-server for all. Writes
bench/results/governance.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "governance.json"
ROOT = Path(__file__).resolve().parent.parent
STAGES = ("plan", "store/memory", "store/redis", "governance/memory", "governance/redis")


# --- worker: runs in the tree under test (imports resolved through PYTHONPATH) ----------------------


def _plan() -> Any:
    from router_service.limits.model import Level, Limit, Metric
    from router_service.limits.periods import Period, PeriodUnit
    from router_service.limits.plan import LimitsPlan

    minute = Period(PeriodUnit.MINUTE)
    big = 10**15
    return LimitsPlan(
        (
            Limit(Level.GLOBAL, Metric.COST, big, Period(PeriodUnit.MONTH)),
            Limit(Level.GLOBAL, Metric.REQUESTS, big, minute),
            Limit(Level.GLOBAL, Metric.TOKENS, big, minute),
            Limit(Level.GLOBAL, Metric.CONCURRENT, big, None),
        )
    )


def _store(kind: str, redis_url: str) -> Any:
    if kind == "memory":
        from router_service.limits.store import MemoryLimitStore

        return MemoryLimitStore()
    from router_service.limits.redis_store import RedisLimitStore

    prefix = f"bench-{uuid.uuid4().hex[:6]}:{{limits}}:"
    return RedisLimitStore.from_url(redis_url, prefix=prefix, timeout_s=5.0)


def _plan_once(plan: Any, identity: Any, estimate: Any) -> None:
    from router_service.limits import plan as p
    from router_service.limits.model import Usage

    now = time.time()
    bounds = plan.bounds_for(identity)
    p.ceiling_violation(bounds, estimate)
    checks = p.build_checks(bounds, p.windows_of(bounds, now), estimate, plan.reservation_ttl_s)
    uuid.uuid4().hex  # noqa: B018 - the id the governor draws
    p.verdict(bounds, checks, [0] * len(checks))
    p.Reservation(bounds, checks).settlements(Usage(1_234_567, 1_200))


async def _run(stage: str, n: int, concurrency: int, redis_url: str) -> list[float]:
    """Per-call wait samples (us) at c=1; at c>1 one sample: CPU us per request."""
    from router_service.call import CallContext
    from router_service.domain import Usage as DomainUsage
    from router_service.governance import Governance
    from router_service.identity.model import UNRESTRICTED
    from router_service.limits.governor import Governor
    from router_service.limits.model import Estimate, Usage

    identity, estimate, plan = UNRESTRICTED, Estimate(2_500_000, 1_500), _plan()
    kind, _, backend = stage.partition("/")
    store: Any = _store(backend, redis_url) if backend else None
    governance = Governance(Governor(plan, store)) if kind == "governance" else None
    ctx = CallContext(request_id="r", deadline=time.monotonic() + 3600, identity=identity)
    checks = _checks(plan, identity, estimate)
    settlements = _settlements(plan, identity, estimate, Usage(1_234_567, 1_200))
    used = DomainUsage(input_tokens=200, output_tokens=1_000)
    samples: list[float] = []
    settling: set[asyncio.Future[bool]] = set()

    async def once(i: int) -> None:
        t0 = time.perf_counter()
        if kind == "plan":
            _plan_once(plan, identity, estimate)
        elif kind == "store":  # the caller waits for the reserve; the settle runs on its own
            now = time.time()
            await store.reserve(f"b{i}", checks, now, now + 600)
            settling.add(asyncio.ensure_future(store.settle(f"b{i}", settlements, now)))
        else:
            assert governance is not None
            admission = await governance.admit(ctx, estimate, "default")
            t1 = time.perf_counter()
            governance.settle(admission, 1_234_567, used)
            samples.append((t1 - t0) * 1e6)
            return
        samples.append((time.perf_counter() - t0) * 1e6)

    async def caller(k: int) -> None:
        for i in range(k, n, concurrency):
            await once(i)

    for i in range(min(200, n)):  # warm-up: connections, scripts, windows
        await once(-i - 1)
    await _settled(governance, settling)
    samples.clear()
    cpu0 = time.process_time()
    await asyncio.gather(*(caller(k) for k in range(concurrency)))
    await _settled(governance, settling)  # the settles still running: their CPU counts too
    cpu = time.process_time() - cpu0
    if store is not None:
        await store.close()
    return samples if concurrency == 1 else [cpu / n * 1e6]


async def _settled(governance: Any, settling: set[asyncio.Future[bool]]) -> None:
    if governance is not None:
        await governance.aclose()
    await asyncio.gather(*settling)
    settling.clear()


def _checks(plan: Any, identity: Any, estimate: Any) -> Any:
    from router_service.limits import plan as p

    bounds = plan.bounds_for(identity)
    return p.build_checks(bounds, p.windows_of(bounds, time.time()), estimate, plan.reservation_ttl_s)


def _settlements(plan: Any, identity: Any, estimate: Any, usage: Any) -> Any:
    from router_service.limits import plan as p

    bounds = plan.bounds_for(identity)
    return p.Reservation(bounds, _checks(plan, identity, estimate)).settlements(usage)


def worker(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out: dict[str, Any] = {}
    for stage in STAGES:
        wait = asyncio.run(_run(stage, args.requests, 1, args.redis_url))
        cpu = asyncio.run(_run(stage, args.requests * 4, 32, args.redis_url))
        out[stage] = {"p50_wait_us": statistics.median(wait), "cpu_us_c32": cpu[0]}
    import redis.utils

    out["hiredis"] = {"available": float(redis.utils.HIREDIS_AVAILABLE)}
    print(json.dumps(out))


# --- driver ----------------------------------------------------------------------------------------


NO_HIREDIS = "no-hiredis"  # a tree name suffix: its worker cannot import hiredis


def hiding_hiredis(workdir: Path) -> Path:
    """A directory whose `hiredis` module fails to import: first on PYTHONPATH, redis-py then
    finds no hiredis (redis.utils catches the ImportError) and parses replies in Python."""
    shim = workdir / "no_hiredis"
    shim.mkdir(exist_ok=True)
    (shim / "hiredis.py").write_text('raise ImportError("hidden by bench/governance.py")\n')
    return shim


def run_worker(name: str, tree: Path, redis_url: str, requests: int) -> dict[str, Any]:
    path = [str(tree)]
    if name.endswith(NO_HIREDIS):
        path.insert(0, str(hiding_hiredis(Path(tempfile.gettempdir()))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    argv = [sys.executable, __file__, "--worker", "--redis-url", redis_url, "--requests", str(requests)]
    done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def medians(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        stage: {m: round(statistics.median(r[stage][m] for r in rounds), 1) for m in rounds[0][stage]}
        for stage in rounds[0]
    }


async def with_redis(trees: dict[str, Path], rounds: int, requests: int) -> dict[str, list[dict[str, Any]]]:
    from router_service.embedded.redis_server import EmbeddedRedis

    server = EmbeddedRedis(log_path=Path(tempfile.gettempdir()) / "bench-governance-redis.log")
    await server.start()
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    try:
        for i in range(rounds):
            order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                got[name].append(await asyncio.to_thread(run_worker, name, tree, server.url, requests))
                print(f"  round {i + 1}/{rounds} {name} done", file=sys.stderr)
    finally:
        await server.stop()
    return got


def print_table(result: dict[str, dict[str, dict[str, float]]]) -> None:
    names = list(result)
    print(f"{'stage':<20}" + "".join(f"{n + ' cpu c32':>18}{n + ' p50 c1':>17}" for n in names))
    for stage in STAGES:
        row = "".join(
            f"{result[n][stage]['cpu_us_c32']:>18}{result[n][stage]['p50_wait_us']:>17}" for n in names
        )
        print(f"{stage:<20}{row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=2000, help="c=1 calls per stage (c=32: 4x)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an older tree holding router_service/, run alongside")
    parser.add_argument(
        "--without-hiredis", action="store_true", help=f"also run each tree as '<name>/{NO_HIREDIS}'"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    trees = {"after": ROOT} if args.before is None else {"before": args.before, "after": ROOT}
    if args.without_hiredis:
        trees = {**{f"{n}/{NO_HIREDIS}": t for n, t in trees.items()}, **trees}
    rounds = asyncio.run(with_redis(trees, args.rounds, args.requests))
    result = {name: medians(r) for name, r in rounds.items()}
    print_table(result)
    report = {
        "benchmark": "governance hot path by stage (bench/governance.py)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "params": {"requests_c1": args.requests, "requests_c32": args.requests * 4, "rounds": args.rounds},
        "unit": "cpu_us_c32: CPU us a request at c=32; p50_wait_us: the caller's wait at c=1 (round medians)",
        "trees": {name: str(tree) for name, tree in trees.items()},
        "result": result,
        "rounds": rounds,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
