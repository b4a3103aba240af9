"""The router end to end: real gRPC over loopback, real HTTP to simulated providers."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from tests.integration.conftest import Sims, chat


def expected_cost_nanos(usage: pb.Usage) -> int:
    """The test config's prices (0.15 / 0.60 / 0.075 USD per Mtok), computed independently."""
    cached = usage.cached_input_token_count
    scaled = (
        (usage.input_token_count - cached) * 150_000_000
        + cached * 75_000_000
        + usage.output_token_count * 600_000_000
    )
    return -(-scaled // 1_000_000)


def cost_nanos(money: object) -> int:
    return int(money.units) * 1_000_000_000 + int(money.nanos)  # type: ignore[attr-defined]


async def status_details(err: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(err)  # AioRpcError has the sync Call accessors
    found: dict[str, object] = {}
    for detail in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                found[cls.__name__] = msg
    return found


async def test_complete_returns_answer_usage_exact_cost_and_routing(stub: pb_grpc.RouterServiceStub) -> None:
    resp = await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="req-1"), timeout=5)

    assert resp.message.role == pb.ROLE_ASSISTANT
    assert "Hello router" in resp.message.content
    assert resp.finish_reason == pb.FINISH_REASON_STOP
    assert resp.usage.input_token_count > 0 and resp.usage.output_token_count > 0
    assert resp.cost.currency_code == "USD"
    assert cost_nanos(resp.cost) == expected_cost_nanos(resp.usage)
    r = resp.routing
    assert (r.request_id, r.provider, r.model, r.policy) == ("req-1", "sim-a", "m1", "default")
    assert [(a.provider, a.outcome) for a in r.attempts] == [("sim-a", pb.ATTEMPT_OUTCOME_SUCCESS)]


async def test_generated_request_id_when_caller_gives_none(stub: pb_grpc.RouterServiceStub) -> None:
    first = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)
    second = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)
    assert len(first.routing.request_id) == 32
    assert first.routing.request_id != second.routing.request_id


async def test_stream_sends_routing_then_deltas_then_end(stub: pb_grpc.RouterServiceStub) -> None:
    unary = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)
    messages = [m async for m in stub.Stream(pb.StreamRequest(chat=chat()), timeout=5)]

    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[0] == "routing" and kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) > 3
    assert messages[0].routing.provider == "sim-a"
    text = "".join(m.delta.text for m in messages[1:-1])
    assert text == unary.message.content
    end = messages[-1].end
    assert end.finish_reason == pb.FINISH_REASON_STOP
    assert end.usage.output_token_count == unary.usage.output_token_count
    assert cost_nanos(end.cost) == expected_cost_nanos(end.usage)
    assert [a.outcome for a in end.routing.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]


async def test_falls_back_when_upstream_answers_500(stub: pb_grpc.RouterServiceStub, sims: Sims) -> None:
    await sims.set_profile("sim-a", error_rate=1.0)

    resp = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)

    attempts = resp.routing.attempts
    assert resp.routing.provider == "sim-b"
    assert [(a.provider, a.outcome, a.error_class, a.http_status) for a in attempts] == [
        ("sim-a", pb.ATTEMPT_OUTCOME_ERROR, pb.ERROR_CLASS_OVERLOADED, 500),
        ("sim-b", pb.ATTEMPT_OUTCOME_SUCCESS, pb.ERROR_CLASS_UNSPECIFIED, 200),
    ]


async def test_falls_back_when_upstream_hangs_and_cancels_the_hung_request(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", hang_rate=1.0)

    resp = await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)

    assert resp.routing.provider == "sim-b"
    timed_out = resp.routing.attempts[0]
    assert (timed_out.provider, timed_out.error_class) == ("sim-a", pb.ERROR_CLASS_TIMEOUT)
    assert 0.9 <= timed_out.latency.ToTimedelta().total_seconds() < 2.0  # the 1 s attempt timeout
    stats = await _settled_stats(sims, "sim-a")
    assert stats["disconnects"] == 1 and stats["in_flight"] == 0


async def test_stream_falls_back_before_the_first_token(stub: pb_grpc.RouterServiceStub, sims: Sims) -> None:
    await sims.set_profile("sim-a", error_rate=1.0)

    messages = [m async for m in stub.Stream(pb.StreamRequest(chat=chat()), timeout=5)]

    assert messages[0].routing.provider == "sim-b"
    assert [a.provider for a in messages[0].routing.attempts] == ["sim-a"]
    assert [a.provider for a in messages[-1].end.routing.attempts] == ["sim-a", "sim-b"]


async def test_stream_cut_after_first_token_ends_with_explicit_error(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", cut_stream_rate=1.0)
    received: list[pb.StreamResponse] = []

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in stub.Stream(pb.StreamRequest(chat=chat()), timeout=5):
            received.append(message)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not any(m.WhichOneof("event") == "end" for m in received)  # never a clean finish
    info = (await status_details(caught.value))["ErrorInfo"]
    assert info.reason == "STREAM_INTERRUPTED"  # type: ignore[attr-defined]
    delivered = sum(len(m.delta.text) for m in received if m.WhichOneof("event") == "delta")
    assert info.metadata["delivered_chars"] == str(delivered)  # type: ignore[attr-defined]


async def test_caller_deadline_cancels_the_upstream_request(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", hang_rate=1.0)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=0.3)

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stats = await _settled_stats(sims, "sim-a")
    assert stats["requests"] == 1 and stats["disconnects"] == 1 and stats["in_flight"] == 0
    assert (await sims.stats("sim-b"))["requests"] == 0  # nothing tried after the caller left


async def test_caller_cancelling_a_stream_cancels_the_upstream_stream(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", token_interval_ms=200, answer_tokens=50)
    call = stub.Stream(pb.StreamRequest(chat=chat()), timeout=10)
    first = await call.read()
    assert first.WhichOneof("event") == "routing"
    assert (await call.read()).WhichOneof("event") == "delta"

    call.cancel()

    stats = await _settled_stats(sims, "sim-a")
    assert stats["disconnects"] == 1 and stats["in_flight"] == 0


async def test_invalid_request_gets_field_violations_and_reaches_no_provider(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    bad = pb.ChatRequest(options=pb.GenerationOptions(temperature=3.0, max_output_tokens=0))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(pb.CompleteRequest(chat=bad, request_id="has spaces"), timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = await status_details(caught.value)
    violations = {v.field for v in details["BadRequest"].field_violations}  # type: ignore[attr-defined]
    assert violations == {
        "request_id",
        "chat.messages",
        "chat.options.temperature",
        "chat.options.max_output_tokens",
    }
    assert details["ErrorInfo"].reason == "INVALID_REQUEST"  # type: ignore[attr-defined]
    assert details["ErrorInfo"].domain == "llmrouter.router.v1"  # type: ignore[attr-defined]
    for name in sims:
        assert (await sims.stats(name))["requests"] == 0


async def test_unknown_model_is_not_found(stub: pb_grpc.RouterServiceStub) -> None:
    request = pb.CompleteRequest(chat=chat(model=pb.ModelSelector(model="no-such-model")))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await status_details(caught.value))["ErrorInfo"].reason == "MODEL_NOT_FOUND"  # type: ignore[attr-defined]


async def test_pin_and_alias_choose_the_first_target(stub: pb_grpc.RouterServiceStub) -> None:
    pinned = await stub.Complete(pb.CompleteRequest(chat=chat(model=pb.ModelSelector(model="m2"))), timeout=5)
    aliased = await stub.Complete(
        pb.CompleteRequest(chat=chat(model=pb.ModelSelector(alias="reverse"))), timeout=5
    )
    assert pinned.routing.model == "m2"
    assert aliased.routing.model == "m3"


async def test_all_targets_failing_is_unavailable_with_retry_info(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=7)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = await status_details(caught.value)
    assert details["ErrorInfo"].reason == "ALL_ATTEMPTS_FAILED"  # type: ignore[attr-defined]
    assert details["RetryInfo"].retry_delay.seconds == 7  # type: ignore[attr-defined]


async def test_route_explains_without_calling_upstream(stub: pb_grpc.RouterServiceStub, sims: Sims) -> None:
    resp = await stub.Route(
        pb.RouteRequest(chat=chat(routing=pb.RoutingHints(denied_providers=["sim-a"]))), timeout=5
    )

    d = resp.decision
    assert (d.chosen, list(d.fallbacks)) == ("sim-b/m2", ["sim-c/m3"])
    excluded = {f"{c.provider}/{c.model}": c.exclusion_reason for c in d.candidates if not c.eligible}
    assert excluded == {"sim-a/m1": "provider 'sim-a' in the request's denied_providers"}
    for name in sims:
        assert (await sims.stats(name))["requests"] == 0


async def test_feedback_validates_score(stub: pb_grpc.RouterServiceStub) -> None:
    await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="req-1"), timeout=5)
    await stub.Feedback(pb.FeedbackRequest(request_id="req-1", score=0.5), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(pb.FeedbackRequest(request_id="req-1", score=1.5), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_serving_and_reflection(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "router.v1.RouterService"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    async for answer in call:
        names = {s.name for s in answer.list_services_response.service}
        assert "router.v1.RouterService" in names
        break


async def test_graceful_shutdown_drains_in_flight_stream(router: RouterApp, sims: Sims) -> None:
    await sims.set_profile("sim-a", token_interval_ms=20, answer_tokens=20)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as ch:
        stub = pb_grpc.RouterServiceStub(ch)
        call = stub.Stream(pb.StreamRequest(chat=chat()), timeout=10)
        assert (await call.read()).WhichOneof("event") == "routing"

        stopping = asyncio.create_task(router.stop(grace_s=5))
        rest = []
        while (message := await call.read()) is not grpc.aio.EOF:
            rest.append(message)
        await stopping

        assert rest[-1].WhichOneof("event") == "end"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=2)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def _settled_stats(sims: Sims, name: str) -> dict[str, object]:
    """Stats once the sim has seen the disconnect (it learns of it asynchronously)."""
    for _ in range(100):
        stats = await sims.stats(name)
        if stats["in_flight"] == 0:
            return stats
        await asyncio.sleep(0.02)
    return await sims.stats(name)
