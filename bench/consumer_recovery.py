"""Consumer crash recovery: how long a SIGKILLed `consume costs` process takes to catch up again.

    .venv/bin/python bench/consumer_recovery.py                  # 1,000 events/s, ~2 min
    .venv/bin/python bench/consumer_recovery.py --history 200000 --rate 1000 --no-baseline

An EmbeddedBroker (Tansu, loopback), a 4-partition events topic, and per variant:
1. `history` events published at once (the backlog a 15-minute dedupe horizon holds: at 1,000
   events/s it is capped by max_ids, 200,000 per partition), then events at `rate` per second,
   sent in rounds every 50 ms as the router's publisher does, until the end;
2. a real `router-service consume costs` process (snapshot interval `interval`); once it has
   caught up and run `warmup` seconds, it is SIGKILLed, and restarted `down` seconds later;
3. the catch-up time: from the restart until every partition's lag (the process's own
   llmrouter_consumer_lag_records) is under one snapshot interval of arrivals (rate x interval),
   and how many records the restarted process re-read below its checkpoint (redelivered); split
   into the time until /metrics answers (interpreter start), until it owns every partition
   again (group join and sync, then the restore from the snapshot topic) and the replay after
   that, with the replay's records per second (the consumer's own speed, group aside); and from
   the restarted process's log: imports done ('starting'), group synced, partitions restored,
   and the first snapshot flush after the restart (its /metrics);
4. then the producer stops, the process drains: every partition's checkpoint on the snapshot
   topic reaches the end offset the broker acknowledged to the producer (drained_s; a RuntimeError
   after `timeout`: not the lag gauge, which goes stale, issue 19), it is stopped (SIGTERM: final
   flush), and its cost rollup (total=all, day windows) is compared with the published
   completions: no double count, nothing missing; `partitions` gives, per partition, the acked
   end offset, the final checkpoint, the completions published and those counted.

Variants, back to back in one run: `log` (the dedupe log: the restart loads the dedupe index) or
`replay` (no dedupe topic: the restart re-reads the dedupe horizon, as before issue 19); and
`static` (--group-instance-id: the restart takes the dead member's place at once) or `dynamic`
(the group first expires the dead member: the session timeout, then a rebalance), with the
consumers' default 10 s session timeout or `--session-timeout-ms`.
Writes bench/results/consumer_recovery.json. Shared, noisy machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx
from aiokafka import AIOKafkaProducer

from bench.consumers import _one_request
from bench.snapshot_topic import read_partitions, read_snapshot_topic
from consumers.kafka import KafkaOptions, ensure_topic
from router_contract.readers.costs import fleet_totals, window_totals
from router_contract.windows import window_start
from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "consumer_recovery.json"
PARTITIONS = 4
DAY_S = 86_400


@dataclass(frozen=True)
class Plan:
    rate: float = 1000.0  # events per second while the consumer is killed and restarted
    history: int = 50_000  # events already in the topic (the dedupe horizon's backlog)
    warmup_s: float = 8.0
    down_s: float = 1.0
    interval_s: float = 5.0
    dedupe_log: bool = True
    timeout_s: float = 120.0  # give up waiting for the catch-up (reported as None)
    group_instance_id: str = ""  # static membership: the restart takes the dead member's place
    session_timeout_ms: int = 10_000


@dataclass
class Result:
    variant: str
    rate: float
    history: int
    lag_bound: int  # rate x snapshot interval
    lag_at_restart: int | None  # first lag the restarted process reported (sum over partitions)
    catch_up_s: float | None  # restart -> every partition's lag under the bound
    up_s: float | None  # restart -> /metrics answers
    owned_s: float | None  # restart -> every partition assigned and restored
    replay_records_per_s: float | None  # records read from owned_s to catch_up_s, per second
    imports_s: float | None  # restart -> the process logs 'starting' (interpreter and imports)
    synced_s: float | None  # restart -> group joined and synced (the log)
    restored_s: float | None  # restart -> 'owns partitions' (the restore done; the log)
    first_flush_s: float | None  # restart -> its first snapshot flush (its /metrics)
    redelivered: int  # records the restarted process re-read below its checkpoint
    drained_s: float | None  # every send acked -> every checkpoint at the acked end offset
    # {partition: [acked end offset, final checkpoint offset, completions published, counted]}
    partitions: dict[int, list[int]]
    completions: int  # published
    counted_requests: int  # in the rollup (must equal completions)
    cost_exact: bool  # the rollup's cost equals the published cost, to the nano


class Producer:
    """Events at a steady rate, sent in 50 ms rounds; remembers the cost of every completion."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._rng = random.Random(7)
        self._producer: Any = None
        self._futures: list[asyncio.Future[Any]] = []
        self.completions: dict[int, tuple[int, int]] = {}  # day start -> (requests, cost nanos)
        self.sent = 0
        # What the broker acknowledged, per partition: one past the highest offset, and how many
        # completions (what the consumer's checkpoint and rollup must reach before the SIGTERM).
        self.end_offsets: dict[int, int] = {}
        self.completion_offsets: dict[int, list[int]] = {}  # partition -> offsets of its completions

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, enable_idempotence=False, acks="all", linger_ms=5
        )
        await self._producer.start()

    async def stop(self) -> None:
        await asyncio.gather(*self._futures)
        await self._producer.stop()

    async def send(self, count: int) -> None:
        sent = 0
        while sent < count:
            now = time.time()
            for event in _one_request(self._rng, f"req-{uuid.uuid4().hex}", now):
                await self._send(event)
                sent += 1

    def _acked(self, done: asyncio.Future[Any], completion: bool) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # stop() re-raises it
        metadata = done.result()
        partition = metadata.partition
        self.end_offsets[partition] = max(self.end_offsets.get(partition, 0), metadata.offset + 1)
        if completion:
            self.completion_offsets.setdefault(partition, []).append(metadata.offset)

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        started, sent = time.monotonic(), 0
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate)
            if due > sent:
                before = self.sent
                await self.send(due - sent)
                sent += self.sent - before
            await asyncio.sleep(0.05)

    async def _send(self, event: ev.TelemetryEvent) -> None:
        key, value, headers = event_codec.encode(event, "json", router_instance="bench-1")
        future = await self._producer.send(self._topic, value, key=key, headers=headers)
        completion = isinstance(event.body, ev.CompletionEvent)
        future.add_done_callback(lambda done: self._acked(done, completion))
        self._futures.append(future)
        self.sent += 1
        if isinstance(event.body, ev.CompletionEvent):
            day = window_start(event.event_time_unix_s, DAY_S)
            requests, cost = self.completions.get(day, (0, 0))
            self.completions[day] = (requests + 1, cost + event.body.cost_nanos)
        if len(self._futures) > 5_000:
            await asyncio.gather(*self._futures)
            self._futures.clear()


class ConsumerProcess:
    """`router-service consume costs` as a child process, with its /metrics read over HTTP."""

    def __init__(self, bootstrap: str, topic: str, snapshot_topic: str, plan: Plan, log: Path) -> None:
        self.port = free_port()
        self._command = [
            sys.executable, "-m", "router_launcher.cli", "consume", "costs", "--bootstrap", bootstrap,
            "--input-topic", topic, "--snapshot-topic", snapshot_topic, "--group-id", f"g-{snapshot_topic}",
            "--snapshot-interval", str(plan.interval_s), "--metrics-port", str(self.port),
            "--group-instance-id", plan.group_instance_id,
            "--session-timeout-ms", str(plan.session_timeout_ms),
        ] + (["--create-topics"] if plan.dedupe_log else [])  # fmt: skip
        self._log = log
        self._process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0  # time.time() of the last start

    async def start(self) -> None:
        env = {**os.environ, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
        self.started_at = time.time()
        with self._log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def milestones(self) -> dict[str, float]:
        """{milestone: seconds from the last start} from this process's log lines."""
        assert self._process is not None
        marks = {"imports": "consumers.main: starting", "synced": "Successfully synced group",
                 "restored": "consumers.runner: costs: owns partitions"}  # fmt: skip
        out: dict[str, float] = {}
        for line in self._log.read_text(errors="replace").splitlines():
            parts = line.split(" ", 4)
            if len(parts) < 5 or parts[3] != str(self._process.pid):
                continue
            stamp = datetime.strptime(f"{parts[0]} {parts[1]}", "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for name, text in marks.items():
                if name not in out and text in parts[4]:
                    out[name] = round(stamp - self.started_at, 2)
        return out

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def terminate(self) -> int:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self._process.wait(), 30)

    async def metrics(self) -> dict[str, float]:
        """{sample name with labels: value} of the costs consumer; {} while it does not answer."""
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1)).text
        except httpx.HTTPError:
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("llmrouter_consumer_") and 'consumer="costs"' in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


def lags(metrics: dict[str, float]) -> list[float]:
    return [value for name, value in metrics.items() if name.startswith("llmrouter_consumer_lag_records{")]


def redelivered(metrics: dict[str, float]) -> int:
    prefix = "llmrouter_consumer_duplicates_skipped"
    return int(
        sum(v for name, v in metrics.items() if name.startswith(f"{prefix}_total") and "redelivered" in name)
    )


@dataclass
class CatchUp:
    done_s: float | None = None  # every partition's lag under the bound (None: timed out)
    first_lag: int | None = None  # the first lag seen
    up_s: float | None = None
    owned_s: float | None = None
    records_at_owned: float = 0.0
    records_at_done: float = 0.0

    def replay_rate(self) -> float | None:
        if self.done_s is None or self.owned_s is None or self.done_s <= self.owned_s:
            return None
        return round((self.records_at_done - self.records_at_owned) / (self.done_s - self.owned_s))


async def wait_first_flush(process: ConsumerProcess, timeout_s: float) -> float | None:
    """Seconds from the process's start to its first snapshot flush (None: none within timeout_s)."""
    while time.time() - process.started_at < timeout_s:
        metrics = await process.metrics()
        if any(name.startswith("llmrouter_consumer_flushes_total") and v > 0 for name, v in metrics.items()):
            return _round(time.time() - process.started_at)
        await asyncio.sleep(0.05)
    return None


def _records(metrics: dict[str, float]) -> float:
    return sum(v for name, v in metrics.items() if name.startswith("llmrouter_consumer_records_total"))


def _owned(metrics: dict[str, float]) -> bool:
    return any(
        name.startswith("llmrouter_consumer_assigned_partitions") and value == PARTITIONS
        for name, value in metrics.items()
    )


async def wait_caught_up(process: ConsumerProcess, bound: float, timeout_s: float) -> CatchUp:
    """Seconds until every partition reports a lag under `bound`, and the steps on the way."""
    started = time.monotonic()
    out = CatchUp()
    while time.monotonic() - started < timeout_s:
        metrics = await process.metrics()
        now = time.monotonic() - started
        if metrics and out.up_s is None:
            out.up_s = now
        if out.owned_s is None and _owned(metrics):
            out.owned_s, out.records_at_owned = now, _records(metrics)
        current = lags(metrics)
        if len(current) == PARTITIONS:
            out.first_lag = int(sum(current)) if out.first_lag is None else out.first_lag
            if all(lag < bound for lag in current):
                out.done_s, out.records_at_done = now, _records(metrics)
                return out
        await asyncio.sleep(0.05)
    return out


async def rollup(bootstrap: str, snapshot_topic: str) -> dict[int, tuple[int, int]]:
    """{day start: (requests, cost nanos)} of total=all, as the snapshot topic says."""
    latest = await read_snapshot_topic(bootstrap, snapshot_topic, PARTITIONS)
    out = {}
    for day in {window_start(time.time() - s, DAY_S) for s in (0, DAY_S)}:
        totals = fleet_totals(latest, "day", day).get("total=all")
        if totals is not None:
            out[day] = (totals.requests, totals.cost_nanos_usd)
    return out


@dataclass(frozen=True)
class Progress:
    """Per input partition, what the snapshot topic says: the checkpoint's offset, and requests counted."""

    offsets: dict[int, int]  # the checkpoint's source offset (everything below it is in the state)
    requests: dict[int, int]  # total=all, summed over the day windows


async def progress(bootstrap: str, snapshot_topic: str) -> Progress:
    restored = await read_partitions(bootstrap, snapshot_topic, PARTITIONS)
    days = {window_start(time.time() - s, DAY_S) for s in (0, DAY_S)}
    offsets, requests = {}, {}
    for partition, state in restored.items():
        if state.checkpoint is not None:
            offsets[partition] = int(state.checkpoint["source"]["offset"])
        for dimension, value in state.dimensions:
            if dimension == "total=all" and value is not None:
                windows = (window_totals(value, "day", day) for day in days)
                requests[partition] = sum(totals.requests for totals in windows if totals is not None)
    return Progress(offsets, requests)


async def wait_checkpointed(
    bootstrap: str, snapshot_topic: str, end_offsets: dict[int, int], timeout_s: float
) -> float:
    """Seconds until every partition's checkpoint covers the producer's acked end offset; raises on timeout.

    Not the lag gauge: the consumer sets it from the high watermark of its last fetch, when that
    fetch returns records, so it reads 0 until the next one whatever arrived since. Under load a
    SIGTERM sent on it came while hundreds of records per partition were unread (issue 19: the
    final checkpoints were short of the end offsets by as much as the count was short). The
    checkpoint is the consumer's own durable progress: everything below it is in the rollup.
    """
    started = time.monotonic()
    while True:
        offsets = (await progress(bootstrap, snapshot_topic)).offsets
        if all(offsets.get(partition, 0) >= end for partition, end in end_offsets.items()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(
                f"the consumer's checkpoints {sorted(offsets.items())} did not reach the acked end "
                f"offsets {sorted(end_offsets.items())} within {timeout_s}s"
            )
        await asyncio.sleep(0.2)


def by_partition(producer: Producer, final: Progress) -> dict[int, list[int]]:
    """{partition: [acked end offset, checkpoint offset, completions, counted]}: where a count is short."""
    out = {}
    for partition, end in sorted(producer.end_offsets.items()):
        published = len(producer.completion_offsets.get(partition, []))
        out[partition] = [end, final.offsets.get(partition, 0), published, final.requests.get(partition, 0)]
    return out


async def recovery(bootstrap: str, plan: Plan, workdir: Path) -> Result:
    topic = f"bench.recovery.events.{uuid.uuid4().hex[:8]}"
    snapshot_topic = f"bench.recovery.costs.{uuid.uuid4().hex[:8]}"
    options = KafkaOptions(bootstrap, enable_idempotence=False)
    await ensure_topic(options, topic, PARTITIONS, compacted=False)
    await ensure_topic(options, snapshot_topic, PARTITIONS, compacted=True)
    producer = Producer(bootstrap, topic)
    await producer.start()
    await producer.send(plan.history)
    process = ConsumerProcess(bootstrap, topic, snapshot_topic, plan, workdir / f"{snapshot_topic}.log")
    stop = asyncio.Event()
    feeding = asyncio.create_task(producer.run(plan.rate, stop))
    bound = plan.rate * plan.interval_s
    try:
        await process.start()
        if (await wait_caught_up(process, bound / PARTITIONS, plan.timeout_s * 3)).done_s is None:
            raise RuntimeError(f"the consumer never caught up with the history; see {workdir}")
        await asyncio.sleep(plan.warmup_s)
        await process.kill()
        await asyncio.sleep(plan.down_s)
        await process.start()
        catch_up = await wait_caught_up(process, bound / PARTITIONS, plan.timeout_s)
        first_flush = await wait_first_flush(process, plan.timeout_s)
        milestones = process.milestones()
        stop.set()
        await feeding
        await producer.stop()
        replayed = redelivered(await process.metrics())
        drained = await wait_checkpointed(bootstrap, snapshot_topic, producer.end_offsets, plan.timeout_s)
        code = await process.terminate()
        if code != 0:
            raise RuntimeError(f"the consumer exited {code}; see {workdir}")
    finally:
        stop.set()
        await process.kill()
    counted = await rollup(bootstrap, snapshot_topic)
    completions = sum(requests for requests, _ in producer.completions.values())
    final = await progress(bootstrap, snapshot_topic)
    return Result(
        variant=("log" if plan.dedupe_log else "replay")
        + ("/static" if plan.group_instance_id else "/dynamic")
        + f"/session {plan.session_timeout_ms / 1000:g}s",
        rate=plan.rate,
        history=plan.history,
        lag_bound=int(bound),
        lag_at_restart=catch_up.first_lag,
        catch_up_s=_round(catch_up.done_s),
        up_s=_round(catch_up.up_s),
        owned_s=_round(catch_up.owned_s),
        replay_records_per_s=catch_up.replay_rate(),
        imports_s=milestones.get("imports"),
        synced_s=milestones.get("synced"),
        restored_s=milestones.get("restored"),
        first_flush_s=first_flush,
        redelivered=replayed,
        drained_s=_round(drained),
        partitions=by_partition(producer, final),
        completions=completions,
        counted_requests=sum(requests for requests, _ in counted.values()),
        cost_exact=counted == producer.completions,
    )


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


async def run(plans: list[Plan], workdir: Path) -> list[Result]:
    results = []
    async with EmbeddedBroker() as broker:
        for plan in plans:
            result = await recovery(broker.bootstrap, plan, workdir)
            print(json.dumps(asdict(result)), flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--history", type=int, default=50_000)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--down", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--session-timeout-ms", type=int, default=2_000, help="of the fast variants")
    parser.add_argument("--no-baseline", action="store_true", help="only log/dynamic with the short session")
    args = parser.parse_args()
    fast = Plan(
        args.rate,
        args.history,
        args.warmup,
        args.down,
        args.interval,
        session_timeout_ms=args.session_timeout_ms,
    )
    plans = [fast]
    if not args.no_baseline:
        plans += [
            dataclasses.replace(fast, session_timeout_ms=10_000, group_instance_id="bench-0"),
            dataclasses.replace(fast, session_timeout_ms=10_000),
            dataclasses.replace(fast, dedupe_log=False),
        ]
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"consumer-recovery-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    results = asyncio.run(run(plans, workdir))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"generated_at": time.time(), "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
