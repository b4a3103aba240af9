"""Builders of router events, a real producer and snapshot-topic readers for the consumer tests."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers import events as ce
from consumers.kafka import KafkaOptions, ensure_topic
from router_contract import snapshot_records
from router_service import domain
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev

MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku"), ("sim", "swift-1"))
TEAMS = ("search", "ads", "")
KEYS = ("key-1", "key-2", "key-3", "key-4")
TASKS = (domain.TaskType.CHAT, domain.TaskType.CODE, domain.TaskType.EXTRACTION)


def unique(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:10]}"


def options(bootstrap: str) -> KafkaOptions:
    return KafkaOptions(bootstrap_servers=bootstrap, enable_idempotence=False, request_timeout_ms=10_000)


# --- router events (the real producer-side types and codec) ---------------------------------------


def context(request_id: str, rng: random.Random) -> ev.RequestContext:
    tags = {"feature": rng.choice(("summarise", "chat", "a=b#c")), "plan": rng.choice(("pro", "free"))}
    if rng.random() < 0.3:
        tags["region"] = "eu"
    return ev.RequestContext(
        request_id=request_id,
        api_key_id=rng.choice(KEYS),
        team=rng.choice(TEAMS),
        customer=rng.choice(("acme", "globex")),
        user=rng.choice(("", "u-1", "u-2")),
        tags=tags,
    )


def request_events(request_id: str, rng: random.Random, now_s: float) -> list[ev.TelemetryEvent]:
    """decision, attempt, completion (and sometimes feedback) of one successful request."""
    provider, model = rng.choice(MODELS)
    ctx = context(request_id, rng)
    task = rng.choice(TASKS)
    decision = domain.RouteDecision(
        policy="balanced", strategy="cost", task_type=task, chain=(f"{provider}/{model}",), candidates=()
    )
    attempt = domain.AttemptRecord(
        provider, model, domain.AttemptOutcome.SUCCESS, rng.uniform(0.05, 2.0), time_to_first_token_s=0.05
    )
    completion = ev.CompletionEvent(
        provider=provider,
        model=model,
        usage=domain.Usage(rng.randint(1, 5000), rng.randint(1, 2000), rng.randint(0, 500)),
        cost_nanos=rng.randint(1, 10**12),
        latency_s=0.3,
        attempt_count=1,
        stream=False,
        finish_reason=domain.FinishReason.STOP,
        cache_hit=rng.random() < 0.1,
        cost_saved_nanos=rng.randint(0, 1000),
    )
    bodies: list[ev.EventBody] = [ev.DecisionEvent(decision), ev.AttemptEvent(0, attempt, model), completion]
    if rng.random() < 0.5:
        bodies.append(ev.FeedbackEvent(round(rng.random(), 3)))
    return [ev.TelemetryEvent.create(ctx, body, now_unix_s=now_s) for body in bodies]


def mixed_events(count_requests: int, seed: int, now_s: float) -> list[ev.TelemetryEvent]:
    rng = random.Random(seed)
    out: list[ev.TelemetryEvent] = []
    for i in range(count_requests):
        out += request_events(f"req-{seed}-{i}", rng, now_s)
    return out


@dataclass(frozen=True)
class GroundTruth:
    """Exact per-dimension sums over a set of events, computed independently of the consumer."""

    totals: dict[str, dict[str, int]]

    @classmethod
    def of(cls, events: Iterable[ev.TelemetryEvent], tag_dimensions: Iterable[str] = ()) -> GroundTruth:
        """`tag_dimensions`: the consumer's configured tag keys (none by default)."""
        tag_keys = set(tag_dimensions)
        totals: dict[str, dict[str, int]] = {}
        seen: set[str] = set()
        for event in events:
            body = event.body
            if not isinstance(body, ev.CompletionEvent) or event.event_id in seen:
                continue
            seen.add(event.event_id)
            for key in _dimension_keys(event.context, body, tag_keys):
                sums = totals.setdefault(key, dict.fromkeys(_FIELDS, 0))
                sums["requests"] += 1
                sums["cache_hits"] += int(body.cache_hit)
                sums["cost_nanos_usd"] += body.cost_nanos
                sums["cost_saved_nanos_usd"] += body.cost_saved_nanos
                if body.cache_hit:  # served from the cache: billed by the call that made it
                    sums["served_input_tokens"] += body.usage.input_tokens
                    sums["served_output_tokens"] += body.usage.output_tokens
                    continue
                sums["input_tokens"] += body.usage.input_tokens
                sums["output_tokens"] += body.usage.output_tokens
                sums["cached_input_tokens"] += body.usage.cached_input_tokens
        return cls(totals)


_FIELDS = (
    "requests",
    "cache_hits",
    "cost_nanos_usd",
    "cost_saved_nanos_usd",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "served_input_tokens",
    "served_output_tokens",
)


def _dimension_keys(ctx: ev.EventContext, body: ev.CompletionEvent, tag_keys: set[str]) -> list[str]:
    # Written out here rather than calling consumers.costs.dimensions: an independent oracle.
    from urllib.parse import quote

    def q(text: str) -> str:
        return quote(text, safe=" :@+")

    keys = [
        "total=all",
        f"api_key={q(ctx.api_key_id)}",
        f"team={q(ctx.team)}",
        f"customer={q(ctx.customer)}",
        f"model={q(body.model)}",
        f"provider={q(body.provider)}",
    ]
    # The per-model breakdowns of the caller (what `routerctl costs --team X` lists).
    keys += [f"{caller},model={q(body.model)}" for caller in keys[1:4]]
    return keys + [f"tag:{q(k)}={q(v)}" for k, v in ctx.tags.items() if k in tag_keys]


def totals_json(totals: Any) -> dict[str, int]:
    return {name: int(getattr(totals, name)) for name in _FIELDS}


# --- Kafka I/O ----------------------------------------------------------------------------------


async def create_topics(bootstrap: str, input_topic: str, partitions: int, snapshot_topic: str) -> None:
    opts = options(bootstrap)
    await ensure_topic(opts, input_topic, partitions, compacted=False)
    await ensure_topic(opts, snapshot_topic, partitions, compacted=True)


async def publish(
    bootstrap: str,
    topic: str,
    events: Sequence[ev.TelemetryEvent],
    *,
    encoding: event_codec.Encoding = "json",
    extra: Sequence[tuple[bytes, bytes | None, list[tuple[str, bytes]]]] = (),
) -> dict[int, int]:
    """Every event as the router's publisher would write it (real codec), plus raw extra records.

    Returns {partition: offset after the last record written}: Tansu's ListOffsets reports the
    base offset of a partition's last batch as its end, so tests take the end from the acks.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        futures = []
        records: list[tuple[bytes, bytes | None, Sequence[tuple[str, bytes]]]] = [
            event_codec.encode(event, encoding, router_instance="test-1") for event in events
        ]
        for key, value, headers in [*records, *extra]:
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        ends: dict[int, int] = {}
        for metadata in await asyncio.gather(*futures):
            ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
        return ends
    finally:
        await producer.stop()


async def read_latest(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The newest value per key of a whole topic (what compaction keeps), JSON-decoded; None = tombstone."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    latest: dict[str, Any] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # until a poll brings nothing (see publish on end offsets)
            batches = await consumer.getmany(*tps, timeout_ms=300)
            if not batches:
                break
            for messages in batches.values():
                for message in messages:
                    value = _decoded(message)
                    latest[message.key.decode()] = value
    finally:
        await consumer.stop()
    return latest


def _decoded(message: Any) -> Any:
    """A snapshot (or dedupe log) record's value as the consumers built it; None: tombstone."""
    return None if message.value is None else snapshot_records.decode(message.value, message.headers)


@dataclass(frozen=True)
class SnapshotRecord:
    key: str
    value: Any  # JSON-decoded; None = tombstone
    timestamp_ms: int


async def read_records(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[SnapshotRecord]:
    """Every record of a topic a running consumer keeps writing to, each key's records in order.

    Reads past the end offsets seen at the start, then polls once more: it ends even though new
    records keep coming, and what it returns is a prefix of every later read, per partition.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[SnapshotRecord] = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        polls, draining = 0, False
        while time.monotonic() < deadline:
            batches = await consumer.getmany(*tps, timeout_ms=300)
            polls += 1
            for messages in batches.values():
                for message in messages:
                    value = _decoded(message)
                    out.append(SnapshotRecord(message.key.decode(), value, message.timestamp))
            if draining:
                break
            # Tansu reports the base offset of a partition's last batch as its end (see publish),
            # or the true end. A position at that end has read all but at most that one batch: a
            # partition also quiet in this poll (and the draining one) has none (a writer that has
            # stopped never moves past the true end: this used to wait out the timeout).
            positions = {tp: await consumer.position(tp) for tp in tps}
            draining = all(
                positions[tp] > end[tp] or (positions[tp] == end[tp] and polls >= 2 and tp not in batches)
                for tp in tps
            )
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


def consumer_event(
    body: ce.Body,
    *,
    event_id: str = "e-1",
    time_s: float = 1_795_000_000.0,
    request_id: str = "req-1",
    team: str = "search",
    api_key_id: str = "key-1",
    customer: str = "acme",
    tags: dict[str, str] | None = None,
) -> ce.Event:
    """A decoded event, for the pure aggregator tests."""
    envelope = ce.Envelope(event_id, time_s, request_id, api_key_id, team, customer, tags or {})
    return ce.Event(envelope, body)
