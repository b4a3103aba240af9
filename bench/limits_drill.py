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

Writes bench/results/limits_drill.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import grpc

from bench.servers import Fleet, Server, free_port, grpc_health_probe, router_service_argv, wait_ready
from bench.snapshot_topic import read_snapshot_topic
from consumers.kafka import KafkaOptions, ensure_topic
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_contract.readers.costs import fleet_totals
from router_contract.windows import window_start
from router_service.catalog import Deployment
from router_service.domain import ChatRequest, Message, Role
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity import key_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.file_store import write_key_file
from router_service.limits import cost
from router_service.limits.model import Estimate
from router_service.routing.cost import CostModel
from router_service.settings import parse_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "limits_drill.json"
PARTITIONS = 3
NANOS_PER_USD = 1_000_000_000
PRICE = {"input": "10", "output": "30"}  # per Mtok: a dollar goes in about a thousand answers
MAX_OUTPUT = 30  # the caller's cap: a reservation close to a real answer (24 tokens + prompt)
PROMPT = "Please summarise the quarterly numbers for the board."


@dataclass
class Params:
    seconds: float = 140.0  # the burst; two full calendar minutes at the default
    budget_usd: str = "1.00"
    callers: int = 24
    tpm_limit: int = 60_000
    kill_at_s: float | None = None  # default: halfway
    reservation_ttl_s: float = 15.0
    seed: int = 7
    # A burst shorter than a minute starts when it fits in one calendar minute (waits for the
    # next otherwise): the TPM counter is per calendar minute, and a short burst split over two
    # may reach the limit in neither (no refusal), or bind in both with the first's in-flight
    # calls counted in the second's rollup minute.
    one_minute: bool = False


@dataclass
class Outcomes:
    ok: int = 0
    exhausted: int = 0
    unavailable: int = 0
    cancelled: int = 0  # by the caller: abandoned streams and deadlines
    other: int = 0
    multi_attempt_calls: int = 0
    other_codes: dict[str, int] = field(default_factory=dict)
    other_sample: dict[str, str] = field(default_factory=dict)  # one message per code


def _deployment() -> Deployment:
    config = parse_config(
        {
            "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
            "models": [{"name": "drill", "provider": "sim", "price_per_mtok": PRICE}],
            "policies": {"default": {"models": ["drill"]}},
        }
    )
    return config.catalog.deployments[0]


def worst_case() -> Estimate:
    """One request's reservation as the router makes it (limits/cost.py): the routing cost
    model's prompt estimate, the caller's output cap, the catalog price."""
    prompt = CostModel().prompt_tokens(ChatRequest(messages=(Message(role=Role.USER, content=PROMPT),)))
    return cost.worst_case((_deployment(),), prompt, MAX_OUTPUT)


def key_file(path: Path) -> dict[str, str]:
    """Two keys, one per limited team; returns {team: secret}."""
    records, secrets = [], {}
    for team in ("budget", "tpm"):
        key_id = f"k_drill_{team}"
        secret = key_secret.new_secret(key_id)
        secrets[team] = secret
        credential = Credential(key_secret.hash_secret(secret))
        records.append(KeyRecord(Identity(key_id=key_id, team=team, customer="drill"), (credential,)))
    write_key_file(path, records)
    return secrets


def router_config(
    port: int,
    sims: list[Server],
    keys: Path,
    bootstrap: str,
    topic: str,
    redis_url: str,
    spool: Path,
    p: Params,
) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "workers": 1, "grace_period_s": 2},
        "metrics": {"listen": ""},
        "auth": {"mode": "required", "keys_file": str(keys)},
        "routing": {"attempt_timeout_s": 5, "first_token_timeout_s": 5},
        # The fast sims fail 0.5% of calls: at this rate the default breaker (3 failures a
        # minute) would keep both open, and the drill would measure NO_ELIGIBLE_CANDIDATE.
        "resilience": {"breaker": {"min_failure_rate": 0.05}},
        "providers": {
            f"sim{i}": {"kind": "openai", "base_url": f"http://127.0.0.1:{s.port}/v1", "api_key": "k"}
            for i, s in enumerate(sims)
        },
        "models": [
            {"name": "drill", "provider": f"sim{i}", "price_per_mtok": PRICE, "capabilities": ["streaming"]}
            for i in range(len(sims))
        ],
        "policies": {"default": {"models": ["drill"], "hedge": {"enabled": True, "delay_s": 0.06}}},
        "events": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "enable_idempotence": False,
            "spool_dir": str(spool),
        },
        "limits": {
            "store": "redis",
            "redis_url": redis_url,
            "store_timeout_s": 2.0,
            "reservation_ttl_s": p.reservation_ttl_s,
            "budgets": [{"level": "team", "entity": "budget", "usd": p.budget_usd, "period": "month"}],
            "rate_limits": [{"level": "team", "entity": "tpm", "tokens_per_minute": p.tpm_limit}],
        },
    }


def request() -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)],
        options=pb.GenerationOptions(max_output_tokens=MAX_OUTPUT),
    )


async def one_call(stub: pb_grpc.RouterServiceStub, secret: str, rng: random.Random, out: Outcomes) -> None:
    metadata = (("authorization", f"Bearer {secret}"),)
    kind = rng.random()
    try:
        if kind < 0.45:  # unary
            response = await stub.Complete(pb.CompleteRequest(chat=request()), metadata=metadata, timeout=10)
            out.multi_attempt_calls += len(response.routing.attempts) > 1  # hedged (or a fallback)
        elif kind < 0.55:  # unary the caller gives up on after 30 ms, before most answers
            # Cancelled by the client, not by a gRPC deadline: the router clips its attempt to
            # the caller's deadline, and that attempt's TIMEOUT would count against the
            # deployment's health (its breaker), which is not what this drill is about.
            call = stub.Complete(pb.CompleteRequest(chat=request()), metadata=metadata, timeout=10)
            task = asyncio.ensure_future(call)
            done, _ = await asyncio.wait({task}, timeout=0.03)
            if not done:
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await task
                out.cancelled += 1
                return
            task.result()
        elif kind < 0.85:  # a stream read to its end
            async for _ in stub.Stream(pb.StreamRequest(chat=request()), metadata=metadata, timeout=10):
                pass
        else:  # a stream the caller leaves after its first delta
            call = stub.Stream(pb.StreamRequest(chat=request()), metadata=metadata, timeout=10)
            async for message in call:
                if message.HasField("delta"):
                    call.cancel()
                    out.cancelled += 1
                    return
            out.ok += 1
            return
        out.ok += 1
    except grpc.aio.AioRpcError as err:
        code = err.code()
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            out.exhausted += 1
            await asyncio.sleep(0.05)  # a refused caller retries soon: the pressure stays on
        elif code is grpc.StatusCode.UNAVAILABLE:
            out.unavailable += 1
        elif code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
            out.cancelled += 1
        else:
            out.other += 1
            out.other_codes[code.name] = out.other_codes.get(code.name, 0) + 1
            out.other_sample.setdefault(code.name, str(err.details())[:300])


async def caller(
    index: int, ports: list[int], alive: list[bool], secret: str, stop: float, out: Outcomes, seed: int
) -> None:
    rng = random.Random(seed * 1000 + index)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
    stubs = [pb_grpc.RouterServiceStub(c) for c in channels]
    try:
        turn = index
        while time.monotonic() < stop:
            turn += 1
            live = [i for i, ok in enumerate(alive) if ok]
            await one_call(stubs[live[turn % len(live)]], secret, rng, out)
    finally:
        for c in channels:
            await c.close()


async def read_rollup(bootstrap: str, snapshot_topic: str) -> dict[str, Any]:
    return await read_snapshot_topic(bootstrap, snapshot_topic, PARTITIONS)


def team_totals(latest: dict[str, Any], team: str, granularity: str, start: int) -> Any:
    return fleet_totals(latest, granularity, start).get(f"team={team}")


async def sample_minutes(
    bootstrap: str, snapshot_topic: str, team: str, into: dict[int, int], stop: asyncio.Event
) -> None:
    """The rollup keeps only the current and previous minute: read it every few seconds during
    the burst and keep each minute's tokens as last seen (a count only grows)."""
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a read racing the consumer's start: try again
            latest = await read_rollup(bootstrap, snapshot_topic)
            now = int(time.time())
            for minute in (window_start(now, 60) - 60, window_start(now, 60)):
                totals = team_totals(latest, team, "minute", minute)
                if totals is not None:
                    into[minute] = max(into.get(minute, 0), totals.input_tokens + totals.output_tokens)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


async def wait_for_rollup(
    bootstrap: str, snapshot_topic: str, want_requests: int, timeout_s: float
) -> dict[str, Any]:
    """The rollup once it counts every answered request of both teams (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    latest: dict[str, Any] = {}
    day = window_start(time.time(), 86400)
    while time.monotonic() < deadline:
        latest = await read_rollup(bootstrap, snapshot_topic)
        counted = sum(
            t.requests
            for team in ("budget", "tpm")
            if (t := team_totals(latest, team, "day", day)) is not None
        )
        if counted >= want_requests:
            return latest
        await asyncio.sleep(1.0)
    return latest


@dataclass
class Stack:
    """The drill's processes: the broker, Redis, the sims and routers (the fleet), the consumer."""

    workdir: Path
    broker: EmbeddedBroker
    redis: EmbeddedRedis
    fleet: Fleet
    topic: str = field(default_factory=lambda: f"drill.events.{uuid.uuid4().hex[:8]}")
    snapshot_topic: str = field(default_factory=lambda: f"drill.costs.{uuid.uuid4().hex[:8]}")
    consumer: subprocess.Popen[bytes] | None = None


@dataclass
class Burst:
    """What the callers got, and when (wall clock for the rollup's windows)."""

    outcomes: dict[str, Outcomes]
    started_wall: float
    ended_wall: float
    killed_at_s: float


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


def spawn_sims(fleet: Fleet) -> list[Server]:
    """Two `fast` simulated providers, seeded apart."""
    sims = []
    for i in range(2):
        port = free_port()
        argv = [*router_service_argv(), "sim", "--port", str(port), "--preset", "fast", "--seed", str(i + 1)]
        sims.append(fleet.spawn(f"sim{i}", port, argv))
    return sims


def router_configs(stack: Stack, sims: list[Server], p: Params) -> list[Callable[[int], dict[str, Any]]]:
    """The three routers' configs (each for the port it is given), each on its own spool."""
    return [
        functools.partial(
            router_config,
            sims=sims,
            keys=stack.workdir / "keys.yaml",
            bootstrap=stack.broker.bootstrap,
            topic=stack.topic,
            redis_url=stack.redis.url,
            spool=stack.workdir / f"spool-{i}",
            p=p,
        )
        for i in range(3)
    ]


def start_costs_consumer(stack: Stack) -> subprocess.Popen[bytes]:
    """A real `router-service consume costs` process rolling the drill's events up every second."""
    with (stack.workdir / "consumer.log").open("wb") as log:
        return subprocess.Popen(
            [*router_service_argv(), "consume", "costs", "--bootstrap", stack.broker.bootstrap,
             "--input-topic", stack.topic, "--snapshot-topic", stack.snapshot_topic,
             "--group-id", f"g-{stack.snapshot_topic}", "--snapshot-interval", "1",
             "--metrics-port", str(free_port()), "--create-topics"],
            cwd=ROOT, env={**os.environ, "KAFKA_ENABLE_IDEMPOTENCE": "false"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


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


async def stop_stack(stack: Stack) -> None:
    """The consumer first (SIGTERM: its final commit), then the fleet, Redis and the broker."""
    consumer = stack.consumer
    if consumer is not None and consumer.poll() is None:
        consumer.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            consumer.wait(20)
        if consumer.poll() is None:
            consumer.kill()
    stack.fleet.stop_all()
    await stack.redis.stop()
    await stack.broker.kill()


def summarize(p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], burst: Burst) -> dict[str, Any]:
    return {
        "benchmark": "limits drill",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params": asdict(p),
        "killed_router_at_s": round(burst.killed_at_s, 1),
        "outcomes": {team: asdict(o) for team, o in burst.outcomes.items()},
        "budget": budget_summary(p, latest, burst.started_wall),
        "tpm": tpm_summary(p, latest, tpm_minutes, burst.started_wall, burst.ended_wall),
    }


def budget_summary(p: Params, latest: dict[str, Any], start: float) -> dict[str, Any]:
    """Team `budget`'s spend in the day window against its limit and the overspend target."""
    budget = team_totals(latest, "budget", "day", window_start(start, 86400))
    spent = budget.cost_nanos_usd if budget is not None else 0
    worst = worst_case().cost_nanos
    limit = int(Decimal(p.budget_usd) * NANOS_PER_USD)
    return {
        "limit_nanos": limit,
        "spent_nanos": spent,
        "overspend_nanos": max(0, spent - limit),
        "worst_case_request_nanos": worst,
        "target_overspend_nanos": 3 * worst,
        "requests_counted": budget.requests if budget is not None else 0,
        "pass": spent - limit <= 3 * worst,
    }


def tpm_summary(
    p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], start: float, end: float
) -> dict[str, Any]:
    """Team `tpm`'s tokens in each calendar minute the burst touched; the verdict is on the
    minutes it covered whole."""
    minutes = [
        minute_summary(p, latest, tpm_minutes, minute, start, end)
        for minute in range(window_start(start, 60), int(end) + 60, 60)
    ]
    whole = [m for m in minutes if m["whole"]]
    worst_share: float | None = max((abs(1 - float(m["share_of_limit"])) for m in whole), default=None)
    return {
        "limit": p.tpm_limit,
        "worst_case_request_tokens": worst_case().tokens,
        "minutes": minutes,
        "whole_minutes": len(whole),
        "max_deviation_whole_minutes": worst_share,
        "pass": worst_share is not None and worst_share <= 0.01,
    }


def minute_summary(
    p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], minute: int, start: float, end: float
) -> dict[str, Any]:
    """One minute's tokens: the final rollup's, or more if a sample during the burst saw more
    (the rollup keeps only two minutes)."""
    totals = team_totals(latest, "tpm", "minute", minute)
    tokens = 0 if totals is None else totals.input_tokens + totals.output_tokens
    tokens = max(tokens, tpm_minutes.get(minute, 0))
    return {
        "minute": dt.datetime.fromtimestamp(minute, dt.UTC).isoformat(),
        "whole": minute >= start and minute + 60 <= end,
        "tokens": tokens,
        "share_of_limit": round(tokens / p.tpm_limit, 5),
    }


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
