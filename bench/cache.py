"""What the response cache costs per request, in process: a hit (`lookup` of a stored answer: the
key's SHA-256 over the normalized request, the store get, inflate and decode), a miss (`lookup` of
an absent key) and a miss then its store (`store` of the fresh answer: encode, deflate, set), against the
in-process LRU and against a real redis-server on loopback (one round trip per get or set).
Sequential calls (c=1: p50/p99) and 32 concurrent callers (hit throughput), the variants back to
back in one run. Writes bench/results/cache.json.

    .venv/bin/python bench/cache.py [--requests 3000]

Not the whole gRPC call: the request path does not call the cache yet (issue 15's wiring), so
this is the cache's own share of a hit, not a hit's latency end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from router_service.cache.cache import CacheSettings, Hit, Miss, ResponseCache
from router_service.cache.entry import CachedAnswer
from router_service.cache.redis_store import RedisCacheStore
from router_service.cache.rules import CacheRules
from router_service.cache.store import CacheStore, MemoryCacheStore
from router_service.clock import SYSTEM_CLOCK
from router_service.domain import ChatRequest, FinishReason, GenerationParams, Message, Role, Usage
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity.model import Identity

RESULTS = Path(__file__).parent / "results" / "cache.json"
CALLER = Identity(key_id="k_bench", team="search", customer="acme")
RULES = CacheRules(policies=frozenset({"*"}))
# A typical cached call: a ~1.2 KB system prompt, a question, a ~1 KB answer.
SYSTEM = "You are a careful assistant for an online bookshop. " * 24
ANSWER = "The order ships within two working days; tracking arrives by email. " * 15


def request(i: int) -> ChatRequest:
    return ChatRequest(
        messages=(Message(Role.SYSTEM, SYSTEM), Message(Role.USER, f"Where is my order #{i}?")),
        params=GenerationParams(temperature=0.0, max_output_tokens=512),
    )


def answer() -> CachedAnswer:
    return CachedAnswer(
        ANSWER, (), FinishReason.STOP, Usage(420, 260), "openai/gpt-small", "gpt-small", time.time()
    )


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_us": round(statistics.median(samples), 1), "p99_us": round(pct(samples, 0.99), 1)}


async def measure(store: CacheStore, n: int, distinct: int = 256) -> dict[str, float]:
    cache = ResponseCache(store, RULES, CacheSettings(timeout_s=5.0), SYSTEM_CLOCK)
    entry = answer()

    async def put(i: int) -> None:  # a miss, then its answer stored
        miss = await cache.lookup(CALLER, request(i), "default")
        assert isinstance(miss, Miss)
        await cache.store(miss, entry)

    async def hit(i: int) -> None:
        assert isinstance(await cache.lookup(CALLER, request(i % distinct), "default"), Hit)

    async def miss(i: int) -> None:
        assert isinstance(await cache.lookup(CALLER, request(distinct + n + i), "default"), Miss)

    await timed(distinct, put)  # fill requests 0..distinct-1; also the warm-up of connections
    hits = await timed(n, hit)
    misses = await timed(n, miss)
    stores = await timed(n, lambda i: put(distinct + 2 * n + i))
    per_worker = n // 32

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await hit(w * per_worker + i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(32)))
    rps = per_worker * 32 / (time.perf_counter() - t0)
    row: dict[str, float] = {}
    for name, samples in (("hit", hits), ("miss", misses), ("miss_store", stores)):
        row |= {f"{name}_{k}": v for k, v in summary(samples).items()}
    row["hit_rps_c32"] = round(rps)
    return row


async def main(n: int) -> dict[str, dict[str, float]]:
    server = EmbeddedRedis(log_path=Path(tempfile.gettempdir()) / "bench-cache-redis.log")
    await server.start()
    try:
        results = {"memory": await measure(MemoryCacheStore(1 << 26, 1 << 18, time.monotonic), n)}
        redis_store = RedisCacheStore.from_url(
            server.url, max_value_bytes=1 << 18, prefix=f"bench-{uuid.uuid4().hex[:6]}:cache:", timeout_s=5.0
        )
        try:
            results["redis"] = await measure(redis_store, n)
        finally:
            await redis_store.close()
        results["memory_again"] = await measure(MemoryCacheStore(1 << 26, 1 << 18, time.monotonic), n)
    finally:
        await server.stop()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    result = asyncio.run(main(args.requests))
    columns = ["hit_p50_us", "hit_p99_us", "miss_p50_us", "miss_store_p50_us", "miss_store_p99_us"]
    columns.append("hit_rps_c32")
    print(f"{'store':<14}" + "".join(f"{c:>19}" for c in columns))
    for name, row in result.items():
        print(f"{name:<14}" + "".join(f"{row[c]:>19}" for c in columns))
    result["config"] = {"requests": args.requests, "answer_bytes": len(ANSWER), "prompt_bytes": len(SYSTEM)}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
