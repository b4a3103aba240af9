"""Router -> Kafka: after a known mix of requests the topic holds exactly the expected events.

Real router over gRPC, real simulated providers over HTTP, real Kafka-protocol broker (Tansu).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY, generate_latest

from consumers.costs.aggregate import CostsAggregator
from consumers.decode import decode as consumer_decode
from router_contract._gen.router.v1 import events_pb2
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import parse_config
from router_service.telemetry.event_codec import decode
from router_service.telemetry.kafka_client import ensure_topics
from tests.integration.conftest import Sims, chat, router_config_dict

SECRET_HEADER = "sk-caller-secret-0123456789abcdef"
TRACE_ID, CALLER_SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"


def events_config(broker: EmbeddedBroker, topic: str, spool: Path, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap,
        "topic": topic,
        "enable_idempotence": False,  # Tansu has no idempotent producer
        "create_topic_partitions": 3,
        "spool_dir": str(spool),
        **extra,
    }


@pytest.fixture
def topic() -> str:
    return f"test.router.events.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def evented_router(
    sims: Sims, kafka_broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> AsyncIterator[RouterApp]:
    config = router_config_dict(sims, attempt_timeout_s=2.0)
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool")
    app = RouterApp(parse_config(config))
    await app.start()
    yield app
    await app.stop(grace_s=2)


async def read_events(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list[Any]:
    """All records of the topic as (key, decoded Event, plain-JSON dict, headers), once `expected`
    arrived and nothing more came for a moment (extras would show up too). The plain dict is
    None for protobuf records."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for rs in batch.values() for r in rs]
            if records:
                quiet_since = time.monotonic()
            for r in records:
                headers = list(r.headers)
                plain = json.loads(r.value) if dict(headers)["content-type"] == b"application/json" else None
                out.append((r.key, decode(r.value, headers), plain, dict(headers)))
            if len(out) >= expected and time.monotonic() - quiet_since > 1.0:
                break
    finally:
        await consumer.stop()
    return out


async def test_topic_holds_exactly_the_expected_events(
    evented_router: RouterApp, sims: Sims, kafka_broker: EmbeddedBroker, topic: str
) -> None:
    metadata = (("authorization", f"Bearer {SECRET_HEADER}"), ("traceparent", TRACEPARENT))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{evented_router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="ok-1"), timeout=5, metadata=metadata)
        [m async for m in stub.Stream(pb.StreamRequest(chat=chat(), request_id="stream-1"), timeout=5)]
        await sims.set_profile("sim-a", error_rate=1.0)
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="fallback-1"), timeout=5)
        for name in ("sim-b", "sim-c"):
            await sims.set_profile(name, error_rate=1.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="fail-1"), timeout=5)
        await sims.set_profile("sim-a", error_rate=0.0, hang_rate=1.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="cancel-1"), timeout=0.3)
        unknown = chat(model=pb.ModelSelector(model="nope"))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(pb.CompleteRequest(chat=unknown, request_id="unknown-1"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(pb.CompleteRequest(chat=pb.ChatRequest(), request_id="invalid-1"), timeout=5)
        await stub.Feedback(pb.FeedbackRequest(request_id="ok-1", score=0.75), timeout=5)
        await sims.set_profile("sim-a", hang_rate=0.0, token_interval_ms=100, answer_tokens=30)
        call = stub.Stream(pb.StreamRequest(chat=chat(), request_id="stream-cancel-1"), timeout=10)
        await call.read()  # routing
        await call.read()  # first delta
        call.cancel()
    await asyncio.sleep(0.3)  # the cancelled call's error event is published when its task unwinds
    expected = {
        "ok-1": ["decision", "attempt", "completion", "feedback"],
        "stream-1": ["decision", "attempt", "completion"],
        "fallback-1": ["decision", "attempt", "attempt", "completion"],
        "fail-1": ["decision", "attempt", "attempt", "attempt", "error"],
        "cancel-1": ["decision", "attempt", "error"],
        "unknown-1": ["error"],
        "stream-cancel-1": ["decision", "attempt", "error"],
    }

    records = await read_events(kafka_broker.bootstrap, topic, sum(map(len, expected.values())))

    by_request: dict[str, list[str]] = defaultdict(list)
    for key, event, plain, headers in records:
        assert key.decode() == event.request_id  # partitioned by request id
        assert plain["eventId"] == event.event_id == headers["ce_id"].decode()
        assert headers["content-type"] == b"application/json"
        by_request[event.request_id].append(event.WhichOneof("body"))
    assert dict(by_request) == expected  # in order within a request; nothing for invalid input
    event_ids = [event.event_id for _, event, _, _ in records]
    assert len(set(event_ids)) == len(records) and all(uuid.UUID(i).version == 4 for i in event_ids)
    # ok-1 came with the caller's W3C trace context: each of its request's events carries it.
    traced = {
        (event.request_id, event.WhichOneof("body")): (plain["traceId"], plain["spanId"])
        for _, event, plain, _ in records
        if plain["traceId"]
    }
    assert traced == {
        ("ok-1", kind): (TRACE_ID, CALLER_SPAN_ID) for kind in ("decision", "attempt", "completion")
    }
    bodies = {(e.request_id, e.WhichOneof("body"), i): e for i, (_, e, _, _) in enumerate(records)}
    _check_bodies(list(bodies.values()))
    assert not any(SECRET_HEADER in json.dumps(plain) for _, _, plain, _ in records)
    assert not any("secret-key-sim" in json.dumps(plain) for _, _, plain, _ in records)


def _check_bodies(events: list[events_pb2.Event]) -> None:
    completions = {e.request_id: e.completion for e in events if e.WhichOneof("body") == "completion"}
    assert completions["stream-1"].stream and not completions["ok-1"].stream
    assert completions["fallback-1"].provider == "sim-b" and completions["fallback-1"].attempt_count == 2
    assert completions["ok-1"].cost_nanos_usd > 0 and completions["ok-1"].usage.output_token_count > 0
    errors = {e.request_id: e.error for e in events if e.WhichOneof("body") == "error"}
    assert (errors["fail-1"].status_code, errors["fail-1"].reason) == ("UNAVAILABLE", "ALL_ATTEMPTS_FAILED")
    assert errors["unknown-1"].status_code == "NOT_FOUND"
    assert errors["stream-cancel-1"].status_code == "CANCELLED"
    cancelled = next(
        e.attempt for e in events if e.request_id == "stream-cancel-1" and e.WhichOneof("body") == "attempt"
    )
    assert cancelled.outcome == pb.ATTEMPT_OUTCOME_CANCELLED
    # The attempt timeout is cut to the caller's 0.3 s deadline; whichever of the engine's timeout
    # and gRPC's own cancellation at the deadline fires first ends the call. Either way: one error.
    assert errors["cancel-1"].status_code in {"DEADLINE_EXCEEDED", "CANCELLED"}
    attempts = [
        e.attempt for e in events if e.request_id == "fallback-1" and e.WhichOneof("body") == "attempt"
    ]
    assert [(a.attempt_index, a.provider, a.outcome) for a in attempts] == [
        (0, "sim-a", pb.ATTEMPT_OUTCOME_ERROR),
        (1, "sim-b", pb.ATTEMPT_OUTCOME_SUCCESS),
    ]
    feedback = next(e for e in events if e.WhichOneof("body") == "feedback")
    assert feedback.feedback.score == 0.75


async def test_no_secret_reaches_events_logs_or_metrics(
    evented_router: RouterApp,
    sims: Sims,
    kafka_broker: EmbeddedBroker,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [SECRET_HEADER, *(f"secret-key-{name}" for name in sims)]  # caller's token, provider keys
    metadata = (("authorization", f"Bearer {SECRET_HEADER}"), ("x-api-key", SECRET_HEADER))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{evented_router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="s-1"), timeout=5, metadata=metadata)
        await sims.set_profile("sim-a", error_rate=1.0)
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="s-2"), timeout=5, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(
                pb.CompleteRequest(chat=pb.ChatRequest(), request_id="s-3"), timeout=5, metadata=metadata
            )

    records = await read_events(kafka_broker.bootstrap, topic, expected=7)

    published = "\n".join(json.dumps(plain) for _, _, plain, _ in records)
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    scraped = generate_latest(REGISTRY).decode()
    assert {e.request_id for _, e, _, _ in records} == {"s-1", "s-2"}
    for secret in secrets:
        assert secret not in published and secret not in logged and secret not in scraped


async def test_broker_outage_keeps_serving_and_loses_no_event(sims: Sims, tmp_path: Path) -> None:
    """Kill the broker mid-load, keep serving, restart it: every request's events arrive."""
    topic = f"test.router.drill.{uuid.uuid4().hex[:10]}"
    required = [f"outage-{i}" for i in range(60)] + [f"after-{i}" for i in range(10)]
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        config = router_config_dict(sims)
        config["events"] = events_config(broker, topic, tmp_path / "spool")
        app = RouterApp(parse_config(config))
        await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.RouterServiceStub(channel)

                async def burst(prefix: str, count: int) -> list[float]:
                    async def one(i: int) -> float:
                        started = time.perf_counter()
                        request = pb.CompleteRequest(chat=chat(), request_id=f"{prefix}-{i}")
                        await stub.Complete(request, timeout=5)
                        return time.perf_counter() - started

                    return list(await asyncio.gather(*(one(i) for i in range(count))))

                await burst("before", 10)
                await broker.kill()
                outage_latencies = await burst("outage", 60)  # every call must still succeed
                await broker.start()  # same port, but memory storage: an operator recreates the topic
                await ensure_topics(broker.bootstrap, {topic: 3})
                await burst("after", 10)
            # Read while the router runs: the restarted broker is empty, so whatever it holds was
            # delivered after the restart, from the spool replay or live.
            kinds = await _kinds_by_request(broker.bootstrap, topic, required, timeout_s=30)
        finally:
            await app.stop(grace_s=2)

    assert max(outage_latencies) < 2.0  # serving never waited on Kafka
    for request_id in required:
        assert kinds[request_id] == {"decision", "attempt", "completion"}, request_id
    # A delivery cut by the outage fails into the disk spool (the publisher never lets aiokafka
    # resend to the restarted broker before the topic is back); either way nothing is dropped.
    assert (REGISTRY.get_sample_value("llmrouter_events_dropped_total", {"reason": "spool_full"}) or 0) == 0


async def _kinds_by_request(
    bootstrap: str, topic: str, required: list[str], timeout_s: float
) -> dict[str, set[str]]:
    """Event kinds per request id, read until every required request has all three kinds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    kinds: dict[str, set[str]] = defaultdict(set)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(len(kinds[r]) == 3 for r in required):
            batch = await consumer.getmany(timeout_ms=200)
            for record in (r for rs in batch.values() for r in rs):
                event = decode(record.value, list(record.headers))
                kinds[event.request_id].add(event.WhichOneof("body"))
    finally:
        await consumer.stop()
    return kinds


async def test_a_hedge_loser_that_answers_late_is_published_with_its_unused_cost(
    sims: Sims, kafka_broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> None:
    """sim-a (first choice) answers in 300 ms, the hedge to sim-b after 50 ms wins. sim-a had
    answered nothing since the loser was sent, so the loser runs on, answers, and is billed: its
    attempt event follows the completion, with the usage and exact cost nobody used, and the
    cost rollups add it to what the request cost."""
    config = router_config_dict(sims)
    config["policies"]["default"]["hedge"] = {"enabled": True, "delay_s": 0.05}
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool")
    await sims.set_profile("sim-a", latency_ms_p50=300, latency_ms_p99=300)
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            response = await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="hedge-1"), timeout=5)
        records = await read_events(kafka_broker.bootstrap, topic, 4)
    finally:
        await app.stop(grace_s=2)

    assert response.routing.provider == "sim-b"
    assert [(a.provider, a.outcome) for a in response.routing.attempts] == [
        ("sim-b", pb.ATTEMPT_OUTCOME_SUCCESS),
        ("sim-a", pb.ATTEMPT_OUTCOME_CANCELLED),  # the caller did not wait for it
    ]
    events = [event for _, event, _, _ in records]
    assert [e.WhichOneof("body") for e in events] == ["decision", "attempt", "completion", "attempt"]
    winner, completion, late = events[1].attempt, events[2].completion, events[3].attempt
    assert (winner.attempt_index, winner.provider, winner.unused_cost_nanos_usd) == (0, "sim-b", 0)
    assert not winner.HasField("unused_usage")
    assert (late.attempt_index, late.provider, late.outcome) == (1, "sim-a", pb.ATTEMPT_OUTCOME_SUCCESS)
    # Both took part in the race: the hedge that won, and the first choice that lost it.
    assert (winner.hedged, late.hedged) == (True, True)
    usage = late.unused_usage
    assert usage.input_token_count > 0 and usage.output_token_count > 0
    # m1's prices: $0.15 in, $0.60 out per Mtok = 150 and 600 nano-USD per token.
    expected_unused = 150 * usage.input_token_count + 600 * usage.output_token_count
    assert late.unused_cost_nanos_usd == expected_unused

    costs = CostsAggregator()
    for offset, (_, _, plain, headers) in enumerate(records):
        decoded = consumer_decode(json.dumps(plain).encode(), list(headers.items()))
        assert decoded is not None
        costs.apply(decoded, offset)
    day = int(events[0].event_time.seconds) // 86_400 * 86_400
    totals = costs.totals("total=all", "day", day)
    assert totals is not None
    assert (totals.requests, totals.unused_answers) == (1, 1)
    assert totals.unused_cost_nanos_usd == expected_unused
    assert totals.cost_nanos_usd == completion.cost_nanos_usd + expected_unused


async def test_nothing_eligible_publishes_the_decision_with_every_reason_before_the_error(
    evented_router: RouterApp, sims: Sims, kafka_broker: EmbeddedBroker, topic: str
) -> None:
    denied = chat(routing=pb.RoutingHints(denied_providers=list(sims)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{evented_router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Complete(pb.CompleteRequest(chat=denied, request_id="none-eligible-1"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    records = await read_events(kafka_broker.bootstrap, topic, 2)

    events = [event for _, event, _, _ in records]
    assert [(e.request_id, e.WhichOneof("body")) for e in events] == [
        ("none-eligible-1", "decision"),
        ("none-eligible-1", "error"),
    ]
    decision, error = events[0].decision, events[1].error
    assert (decision.policy, decision.chosen, list(decision.fallbacks)) == ("default", "", [])
    assert [(c.provider, c.model, c.eligible, c.exclusion_reason) for c in decision.candidates] == [
        (name, model, False, f"provider {name!r} in the request's denied_providers")
        for name, model in (("sim-a", "m1"), ("sim-b", "m2"), ("sim-c", "m3"))
    ]
    assert all(c.estimated_cost.nanos > 0 for c in decision.candidates)
    assert (error.status_code, error.reason, error.attempt_count) == (
        "FAILED_PRECONDITION",
        "NO_ELIGIBLE_CANDIDATE",
        0,
    )


async def test_retries_of_a_request_id_publish_no_second_set_of_events(
    evented_router: RouterApp, sims: Sims, kafka_broker: EmbeddedBroker, topic: str
) -> None:
    """Retried (sequentially, and while the first call runs) Complete and Stream ids publish one
    decision, one attempt and one completion each; a retry after a failure runs again, so only
    the completion is once per id: its failed attempt and error events stay."""
    await sims.set_profile("sim-a", latency_ms_p50=200, latency_ms_p99=200)
    complete = pb.CompleteRequest(chat=chat(), request_id="retry-c")
    stream = pb.StreamRequest(chat=chat(), request_id="retry-s")
    failing = pb.CompleteRequest(
        chat=chat(model=pb.ModelSelector(model="m3", disable_fallback=True)), request_id="retry-f"
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{evented_router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)

        async def streamed() -> list[pb.StreamResponse]:
            return [m async for m in stub.Stream(stream, timeout=5)]

        await asyncio.gather(*(stub.Complete(complete, timeout=5) for _ in range(3)))
        await asyncio.gather(*(streamed() for _ in range(3)))
        await stub.Complete(complete, timeout=5)
        await streamed()
        await sims.set_profile("sim-c", error_rate=1.0)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Complete(failing, timeout=5)
        await sims.set_profile("sim-c", error_rate=0.0)
        await stub.Complete(failing, timeout=5)
        await stub.Complete(failing, timeout=5)
    expected = {
        "retry-c": ["decision", "attempt", "completion"],
        "retry-s": ["decision", "attempt", "completion"],
        "retry-f": ["decision", "attempt", "error", "decision", "attempt", "completion"],
    }

    records = await read_events(kafka_broker.bootstrap, topic, sum(map(len, expected.values())))

    by_request: dict[str, list[str]] = defaultdict(list)
    for _, event, _, _ in records:
        by_request[event.request_id].append(event.WhichOneof("body"))
    assert dict(by_request) == expected


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
async def test_every_event_of_a_keyed_call_carries_the_callers_identity_not_its_tags(
    sims: Sims, kafka_broker: EmbeddedBroker, topic: str, tmp_path: Path, encoding: str
) -> None:
    store = FileKeyStore(tmp_path / "keys.yaml", poll_s=0)
    await store.start()
    identity = Identity(key_id="k_search", team="search", customer="acme", user="u-4711")
    _, secret = await create_key(store, identity)
    config = router_config_dict(sims, attempt_timeout_s=2.0)
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool", encoding=encoding)
    config["auth"] = {"mode": "required", "keys_file": str(store.path)}
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            request = pb.CompleteRequest(chat=chat(tags={"team": "someone-else"}))
            await stub.Complete(request, metadata=(("authorization", f"Bearer {secret}"),))
    finally:
        await app.stop(grace_s=2)
    events = await read_events(kafka_broker.bootstrap, topic, expected=3)
    assert len(events) == 3  # decision, attempt, completion
    attribution = ("k_search", "search", "acme", "u-4711")
    for _, event, plain, _ in events:
        assert (event.api_key_id, event.team, event.customer, event.user) == attribution
        if encoding == "json":
            assert (plain["apiKeyId"], plain["team"], plain["customer"], plain["user"]) == attribution
        value = json.dumps(plain) if plain is not None else event.SerializeToString().decode("latin-1")
        assert secret.split(".", 1)[1][:12] not in value
