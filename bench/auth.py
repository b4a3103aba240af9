"""What authentication costs per call, in process: the gate's identify() for a key seen before
(the verified-secret cache: one SHA-256 and dict lookups), one after to the other and with 32
calls in flight at once on one event loop (issue 13's target: under 20 us a call at c=32), for a
first sight of a key (one HMAC-SHA256 verification), and for a rejected unknown key id. Writes
bench/results/auth.json.

    .venv/bin/python bench/auth.py [--calls 20000]

Not the whole gRPC call: reading the metadata and the servicer's extra await come on top; the
whole router with and without keys is bench/overhead.py's `router/aiohttp+auth` row."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from router_service.errors import UnauthenticatedError
from router_service.identity import key_secret
from router_service.identity.authenticator import Authenticator
from router_service.identity.gate import AuthGate, AuthMode
from router_service.identity.model import Identity, Scope
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.base import MemoryKeyStore

RESULTS = Path(__file__).parent / "results" / "auth.json"


async def measure(calls: int) -> dict[str, float]:
    secrets = [key_secret.new_secret(f"k_{i}") for i in range(1000)]
    records = [
        KeyRecord(Identity(key_id=f"k_{i}", team="t"), (Credential(key_secret.hash_secret(s)),))
        for i, s in enumerate(secrets)
    ]
    store = MemoryKeyStore(records)
    gate = AuthGate(AuthMode.REQUIRED, Authenticator(store.get, time.time))

    async def per_call_us(presented: list[str], expect_ok: bool, concurrency: int = 1) -> list[float]:
        samples: list[float] = []

        async def caller(start: int) -> None:
            for secret in presented[start::concurrency]:
                started = time.perf_counter_ns()
                try:
                    await gate.identify(secret, None, Scope.COMPLETE)
                except UnauthenticatedError:
                    assert not expect_ok
                samples.append((time.perf_counter_ns() - started) / 1000)
                # Untimed: the in-memory lookup never suspends, so without this yield the callers
                # would run one after the other instead of interleaving as a server's calls do.
                await asyncio.sleep(0)

        await asyncio.gather(*(caller(i) for i in range(concurrency)))
        return samples

    seen = [secrets[i % len(secrets)] for i in range(calls)]
    first = await per_call_us(secrets, True)  # each key's first call: verifies its hash
    cached = await per_call_us(seen, True)
    cached32 = await per_call_us(seen, True, concurrency=32)
    unknown = await per_call_us([key_secret.new_secret("k_nobody") for _ in range(1000)], False)

    def p(samples: list[float], q: float) -> float:
        return statistics.quantiles(samples, n=100)[int(q) - 1]

    return {
        "cached_p50_us": p(cached, 50),
        "cached_p99_us": p(cached, 99),
        "cached_c32_p50_us": p(cached32, 50),
        "cached_c32_p99_us": p(cached32, 99),
        "first_sight_p50_us": p(first, 50),
        "unknown_key_p50_us": p(unknown, 50),
        "calls": calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls))
    for name, value in result.items():
        print(f"{name:<22} {value:>10.2f}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
