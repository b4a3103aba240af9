"""Limits drill (issue 14): do a budget and a TPM limit hold across replicas, with one killed?

    .venv/bin/python bench/limits_drill.py                 # ~2.5 min: two full calendar minutes
    .venv/bin/python bench/limits_drill.py --seconds 40    # shorter (TPM then over partial minutes)

Real processes only: an embedded Kafka broker (Tansu) and a real redis-server on loopback, two
simulated providers (`router-service sim --preset fast`: 40 ms p50, 24-token answers), three
`router-service serve` routers sharing the Redis limits store (auth required, a key file of two
keys) and publishing their events, and a real `router-service consume costs` process rolling the
events up. Two teams are limited at the same time:

- team `budget`: a hard budget of $1.00 per month (fail_closed);
- team `tpm`: `tokens_per_minute` (input + output, reserved at estimated input + max output,
  settled to the real tokens).

Concurrent callers (each its own loop, spread over the three routers) try to overspend both:
unary calls, streams read to the end, streams cancelled after their first delta and unary
calls the caller cancels after 30 ms; the policy hedges after 60 ms, so slow first attempts race
a second deployment (whose attempt reserves too). Halfway through, one router is SIGKILLed; its
callers move to the others, and its reservations come back after reservation_ttl_s.

After the burst the killed router is started again (on its spool: it replays the events of
calls it answered before it died), and the rollup is read once it counts every answered call.
Measured from the costs consumer's rollups (the settled truth, not the store's counters):
- overspend: team `budget`'s exact spend (nano-USD, the day window) minus $1.00; the target is
  at most one request's worst-case cost per replica (3 x worst case);
- admitted TPM: team `tpm`'s input + output tokens per calendar minute of the rollup; the target
  is within 1% of the limit for every minute the burst covered whole (refusals every minute show
  it was binding).

Writes bench/results/limits_drill.json. Its parts: limits_drill_params.py (parameters, workload),
limits_drill_stack.py (the processes), limits_drill_callers.py (the load), limits_drill_rollup.py
(reading the rollups), limits_drill_report.py (the verdict); this module runs the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.limits_drill_callers import Burst, Outcomes, caller
from bench.limits_drill_params import PARTITIONS, Params
from bench.limits_drill_report import summarize
from bench.limits_drill_rollup import sample_minutes, wait_for_rollup
from bench.limits_drill_stack import (
    Stack,
    key_file,
    router_configs,
    spawn_sims,
    start_costs_consumer,
    stop_stack,
)
from bench.servers import Fleet, Server, grpc_health_probe, wait_ready
from consumers.kafka import KafkaOptions, ensure_topic
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "limits_drill.json"


async def drill(p: Params, workdir: Path) -> dict[str, Any]:
    stack = Stack(
        workdir,
        EmbeddedBroker(log_path=workdir / "tansu.log"),
        EmbeddedRedis(log_path=workdir / "redis.log"),
        Fleet(workdir),
    )
    await stack.broker.start()
    await stack.redis.start()
    try:
        await ensure_topic(
            KafkaOptions(stack.broker.bootstrap, enable_idempotence=False),
            stack.topic,
            PARTITIONS,
            compacted=False,
        )
        secrets = key_file(workdir / "keys.yaml")
        configs = router_configs(stack, spawn_sims(stack.fleet), p)
        routers = [stack.fleet.spawn_router(f"router{i}", config) for i, config in enumerate(configs)]
        for r in routers:
            await wait_ready(r, grpc_health_probe(r.port))
        stack.consumer = start_costs_consumer(stack)
        tpm_minutes: dict[int, int] = {}
        sampling_done = asyncio.Event()
        sampler = asyncio.create_task(
            sample_minutes(stack.broker.bootstrap, stack.snapshot_topic, "tpm", tpm_minutes, sampling_done)
        )
        burst = await run_burst(p, routers, secrets)
        answered = sum(o.ok for o in burst.outcomes.values())
        # The killed router's events were spooled before its calls answered (events.durable),
        # and are replayed when it starts again: restart it, as an orchestrator would.
        restarted = stack.fleet.spawn_router("router2-restarted", configs[2])
        await wait_ready(restarted, grpc_health_probe(restarted.port))
        latest = await wait_for_rollup(stack.broker.bootstrap, stack.snapshot_topic, answered, timeout_s=60)
        sampling_done.set()
        await sampler
    finally:
        await stop_stack(stack)
    return summarize(p, latest, tpm_minutes, burst)


async def run_burst(p: Params, routers: list[Server], secrets: dict[str, str]) -> Burst:
    """The callers, half per team, until `p.seconds`; router 2 is SIGKILLed at `kill_at_s`."""
    if p.one_minute:
        await asyncio.sleep(wait_to_fit_minute(time.time(), p.seconds))
    ports = [r.port for r in routers]
    alive = [True, True, True]
    outcomes = {"budget": Outcomes(), "tpm": Outcomes()}
    started_wall, started = time.time(), time.monotonic()
    stop = started + p.seconds
    tasks = [
        asyncio.create_task(caller(i, ports, alive, secrets[team], stop, outcomes[team], p.seed))
        for i in range(p.callers)
        for team in (("budget", "tpm")[i % 2],)
    ]
    await asyncio.sleep(p.kill_at_s if p.kill_at_s is not None else p.seconds / 2)
    alive[2] = False  # callers stop choosing it; calls in flight there fail UNAVAILABLE
    os.kill(routers[2].proc.pid, signal.SIGKILL)
    killed_at_s = time.monotonic() - started
    await asyncio.gather(*tasks)
    return Burst(outcomes, started_wall, time.time(), killed_at_s)


def wait_to_fit_minute(now: float, seconds: float, margin_s: float = 1.0) -> float:
    """Seconds to wait so that `seconds` from then (plus a margin) end in the same calendar minute."""
    into = now % 60
    return 0.0 if into + seconds + margin_s <= 60 else 60 - into + 0.05  # just past the boundary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=Params.seconds)
    parser.add_argument("--callers", type=int, default=Params.callers)
    parser.add_argument("--tpm", type=int, default=Params.tpm_limit)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = Params(seconds=args.seconds, callers=args.callers, tpm_limit=args.tpm)
    with tempfile.TemporaryDirectory(prefix="limits-drill-") as tmp:
        report = asyncio.run(drill(params, Path(tmp)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("outcomes", "budget", "tpm")}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
