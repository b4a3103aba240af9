"""The gRPC boundary on a real router (real server on port 0, its real interceptors, simulated
providers over HTTP): every method of every served service works through the interceptors, and
bad input, down to bytes that do not decode, gets INVALID_ARGUMENT with ErrorInfo, never
UNKNOWN or INTERNAL, and fits a default client's trailer."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.api.status import DOMAIN, MAX_FIELD_VIOLATIONS
from router_service.app import RouterApp
from router_service.telemetry import metrics
from tests.integration.conftest import chat

ROUTER = "/router.v1.RouterService/"
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def details(
    error: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest | None]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    info, bad = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    return info, bad


def count(method: str, code: str) -> float:
    value = metrics.RPC_REQUESTS.labels(method, code)._value.get()
    return float(value)


async def test_every_method_of_every_service_answers_through_the_interceptors(
    channel: grpc.aio.Channel, stub: pb_grpc.RouterServiceStub
) -> None:
    route = await stub.Route(pb.RouteRequest(chat=chat()), timeout=10)
    assert route.decision.chosen
    done = await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="boundary-1"), timeout=10)
    assert done.message.content and done.routing.request_id == "boundary-1"
    kinds = [r.WhichOneof("event") async for r in stub.Stream(pb.StreamRequest(chat=chat()), timeout=10)]
    assert kinds[0] == "routing" and kinds[-1] == "end" and "delta" in kinds
    await stub.Feedback(pb.FeedbackRequest(request_id="boundary-1", score=0.5), timeout=10)

    health = health_pb2_grpc.HealthStub(channel)
    checked = await health.Check(health_pb2.HealthCheckRequest(service="router.v1.RouterService"), timeout=10)
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[union-attr]
    watch.cancel()

    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="router.v1.RouterService"),
    ]
    answers = [r async for r in reflection.ServerReflectionInfo(iter(requests), timeout=10)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"router.v1.RouterService", "grpc.health.v1.Health"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto


async def test_health_watch_streams_a_status_change(channel: grpc.aio.Channel, router: RouterApp) -> None:
    before = count("Watch", "CANCELLED") + count("Watch", "OK")
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service="router.v1.RouterService"), timeout=30)
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING  # type: ignore[union-attr]

    stopping = asyncio.create_task(router.stop(grace_s=1))  # enters graceful shutdown: NOT_SERVING
    second = await asyncio.wait_for(watch.read(), timeout=20)
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING  # type: ignore[union-attr]
    await stopping
    # The metrics interceptor saw the Watch end (cancelled by the server's stop), not UNKNOWN.
    assert count("Watch", "CANCELLED") + count("Watch", "OK") == before + 1
    assert count("Watch", "UNKNOWN") == 0


def _valid_body(method: str, text: str = "a body to break") -> bytes:
    if method == "Feedback":
        return pb.FeedbackRequest(request_id=text, score=0.5).SerializeToString()
    request = {"Route": pb.RouteRequest, "Complete": pb.CompleteRequest, "Stream": pb.StreamRequest}[method]
    return request(chat=chat(text)).SerializeToString()


def _invalid_utf8(method: str) -> bytes:
    """A string field (message content; Feedback's request id) holding bytes that are not UTF-8."""
    return _valid_body(method, "QQQQ").replace(b"QQQQ", b"\xff\xfe\xff\xfe")


def _too_deep() -> bytes:
    """A ChatRequest whose tool parameters nest Structs past protobuf's recursion limit of 100
    message levels (each Struct level is three: Struct, map entry, Value); 25 levels decode."""
    value = b""
    for _ in range(120):  # Struct{fields{"a": Value{struct_value: ...}}}
        entry = (
            b"\x0a\x01a"
            + b"\x12"
            + _varint(len(b"\x2a" + _varint(len(value)) + value))
            + b"\x2a"
            + _varint(len(value))
            + value
        )
        value = b"\x0a" + _varint(len(entry)) + entry
    tool = b"\x0a\x01f" + b"\x1a" + _varint(len(value)) + value
    user = pb.Message(role=pb.ROLE_USER, content="hi").SerializeToString()
    chat_bytes = b"\x0a" + _varint(len(user)) + user + b"\x22" + _varint(len(tool)) + tool
    return b"\x0a" + _varint(len(chat_bytes)) + chat_bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize(
    ("method", "breakage"),
    [
        (method, breakage)
        for method in ("Route", "Complete", "Stream", "Feedback")
        for breakage in ("truncated", "invalid_utf8", "too_deep", "garbage")
        if (method, breakage) != ("Feedback", "too_deep")  # FeedbackRequest nests nothing
    ],
)
async def test_a_body_that_does_not_decode_is_invalid_argument(
    channel: grpc.aio.Channel, method: str, breakage: str
) -> None:
    valid = _valid_body(method)
    body = {
        "truncated": valid[: len(valid) - 3],
        "invalid_utf8": _invalid_utf8(method),
        "too_deep": _too_deep(),
        "garbage": b"\xff\xff\xff\xff",
    }[breakage]
    if method == "Stream":
        call = channel.unary_stream(ROUTER + method)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call(body, timeout=10):
                pass
    else:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(ROUTER + method)(body, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "class" not in (caught.value.details() or "") and "Error" not in (caught.value.details() or "")
    info, _ = details(caught.value)
    assert (info.domain, info.reason) == (DOMAIN, "INVALID_REQUEST")
    assert info.metadata["message_type"] == f"router.v1.{method}Request" and info.metadata["request_id"]


async def test_health_and_reflection_answer_undecodable_bodies_with_invalid_argument(
    channel: grpc.aio.Channel,
) -> None:
    for method in ("Check", "Watch"):
        call = (
            channel.unary_unary(HEALTH + method)
            if method == "Check"
            else channel.unary_stream(HEALTH + method)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            result = call(b"\x0a\x05ab", timeout=10)  # truncated string field
            if method == "Check":
                await result
            else:
                async for _ in result:
                    pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(caught.value)[0].metadata["message_type"] == "grpc.health.v1.HealthCheckRequest"

    bidi = channel.stream_stream(REFLECTION)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in bidi(iter([b"\x1a\x05ab"]), timeout=10):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        details(caught.value)[0].metadata["message_type"] == "grpc.reflection.v1alpha.ServerReflectionRequest"
    )


async def test_a_thousand_invalid_messages_reach_a_default_client_as_invalid_argument(
    stub: pb_grpc.RouterServiceStub,
) -> None:
    """A default client (8 KiB metadata limit) used to get RESOURCE_EXHAUSTED here."""
    bad = pb.ChatRequest(messages=[pb.Message(role=541) for _ in range(1000)])  # type: ignore[arg-type]
    for call in (
        stub.Complete(pb.CompleteRequest(chat=bad), timeout=10),
        stub.Route(pb.RouteRequest(chat=bad), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        info, bad_request = details(caught.value)
        assert bad_request is not None and 0 < len(bad_request.field_violations) <= MAX_FIELD_VIOLATIONS
        assert bad_request.field_violations[0].field == "chat.messages[0].role"
        total = len(bad_request.field_violations) + int(info.metadata["omitted_field_violations"])
        assert total == 2000  # each message: an unknown role and no content
