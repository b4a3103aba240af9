"""Caller request ids over real gRPC, counted at the simulated providers: a retry gets the first
answer without a second upstream call; the same id with another request, Feedback for an id never
served, and an invalid id get precise errors that echo nothing invalid."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


async def upstream_requests(sims: Sims) -> int:
    return sum([(await sims.stats(name))["requests"] for name in sims])


def details(err: grpc.aio.AioRpcError) -> dict[str, Any]:
    status = rpc_status.from_call(err)
    found: dict[str, Any] = {}
    for detail in status.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.ResourceInfo,
        ):
            if detail.Is(cls.DESCRIPTOR):
                found[cls.__name__] = msg = cls()
                detail.Unpack(msg)
    return found


async def test_a_retried_complete_gets_the_same_answer_bytes_without_a_second_upstream_call(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    request = pb.CompleteRequest(chat=chat("Tell me about retries"), request_id="idem-c-1")
    first = await stub.Complete(request, timeout=5)
    # Even with the first choice now failing, the retry is answered from the ledger.
    await sims.set_profile("sim-a", error_rate=1.0)
    retries = [await stub.Complete(request, timeout=5) for _ in range(3)]

    assert all(r.SerializeToString() == first.SerializeToString() for r in retries)
    assert (first.routing.request_id, first.routing.provider) == ("idem-c-1", "sim-a")
    assert first.cost.nanos > 0
    assert await upstream_requests(sims) == 1


async def test_a_retried_stream_replays_the_same_message_sequence(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    request = pb.StreamRequest(chat=chat("Stream me a story"), request_id="idem-s-1")
    first = [m.SerializeToString() async for m in stub.Stream(request, timeout=5)]
    retry = [m.SerializeToString() async for m in stub.Stream(request, timeout=5)]

    assert retry == first
    kinds = [pb.StreamResponse.FromString(m).WhichOneof("event") for m in first]
    assert kinds[0] == "routing" and kinds[-1] == "end" and set(kinds[1:-1]) == {"delta"}
    assert await upstream_requests(sims) == 1


async def test_retries_while_the_first_call_runs_wait_for_its_answer(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", latency_ms_p50=300, latency_ms_p99=300)
    complete = pb.CompleteRequest(chat=chat(), request_id="idem-join-c")
    stream = pb.StreamRequest(chat=chat(), request_id="idem-join-s")

    async def streamed() -> list[bytes]:
        return [m.SerializeToString() async for m in stub.Stream(stream, timeout=5)]

    answers = await asyncio.gather(*(stub.Complete(complete, timeout=5) for _ in range(4)))
    streams = await asyncio.gather(*(streamed() for _ in range(4)))

    assert len({a.SerializeToString() for a in answers}) == 1
    assert len({tuple(s) for s in streams}) == 1
    assert await upstream_requests(sims) == 2  # one Complete, one Stream


async def test_a_caller_that_gives_up_waiting_does_not_cancel_the_first_call(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    await sims.set_profile("sim-a", latency_ms_p50=400, latency_ms_p99=400)
    request = pb.CompleteRequest(chat=chat(), request_id="idem-impatient")
    first = asyncio.ensure_future(stub.Complete(request, timeout=5))
    await asyncio.sleep(0.1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(request, timeout=0.1)  # waits for the first, then its deadline passes
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    answer = await first
    assert answer.routing.provider == "sim-a"
    stats = await sims.stats("sim-a")
    assert (stats["requests"], stats["disconnects"], stats["completed"]) == (1, 0, 1)
    assert (await stub.Complete(request, timeout=5)).SerializeToString() == answer.SerializeToString()


async def test_a_failed_call_is_not_stored_and_its_retry_runs_again(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    for name in sims:
        await sims.set_profile(name, error_rate=1.0)
    request = pb.CompleteRequest(chat=chat(), request_id="idem-fail")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Complete(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await upstream_requests(sims) == 3
    for name in sims:
        await sims.set_profile(name, error_rate=0.0)

    retry = await stub.Complete(request, timeout=5)

    assert retry.routing.request_id == "idem-fail"
    assert await upstream_requests(sims) == 4
    assert (await stub.Complete(request, timeout=5)).SerializeToString() == retry.SerializeToString()


async def test_an_interrupted_stream_is_not_stored(stub: pb_grpc.RouterServiceStub, sims: Sims) -> None:
    await sims.set_profile("sim-a", token_interval_ms=100, answer_tokens=30)
    request = pb.StreamRequest(chat=chat(), request_id="idem-cut")
    call = stub.Stream(request, timeout=10)
    await call.read()  # routing
    await call.read()  # first delta
    call.cancel()
    await asyncio.sleep(0.2)  # the cancelled handler unwinds
    await sims.set_profile("sim-a", token_interval_ms=0, answer_tokens=5)

    retry = [m async for m in stub.Stream(request, timeout=5)]

    assert retry[-1].WhichOneof("event") == "end"
    assert (await sims.stats("sim-a"))["requests"] == 2


@pytest.mark.parametrize("rpc", ["Complete", "Stream"])
async def test_the_same_id_with_another_request_is_refused_and_reaches_no_provider(
    stub: pb_grpc.RouterServiceStub, sims: Sims, rpc: str
) -> None:
    if rpc == "Complete":
        await stub.Complete(pb.CompleteRequest(chat=chat("first"), request_id="idem-reuse"), timeout=5)
    else:
        [
            m
            async for m in stub.Stream(
                pb.StreamRequest(chat=chat("first"), request_id="idem-reuse"), timeout=5
            )
        ]
    others = [
        stub.Complete(pb.CompleteRequest(chat=chat("second"), request_id="idem-reuse"), timeout=5),
        stub.Complete(
            pb.CompleteRequest(chat=chat("first", tags={"k": "v"}), request_id="idem-reuse"), timeout=5
        ),
    ]
    if rpc == "Complete":  # the same chat as a Stream is another request too
        others.append(
            stub.Stream(pb.StreamRequest(chat=chat("first"), request_id="idem-reuse"), timeout=5).read()
        )
    for other in others:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await other
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = details(caught.value)["ErrorInfo"]
        assert (info.reason, info.domain, info.metadata["request_id"]) == (
            "REQUEST_ID_REUSED",
            "llmrouter.router.v1",
            "idem-reuse",
        )
    assert await upstream_requests(sims) == 1


async def test_feedback_for_a_request_never_served_is_not_found(stub: pb_grpc.RouterServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Feedback(pb.FeedbackRequest(request_id="never-served", score=0.5), timeout=5)

    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    found = details(caught.value)
    assert found["ErrorInfo"].reason == "REQUEST_NOT_FOUND"
    assert (found["ResourceInfo"].resource_type, found["ResourceInfo"].resource_name) == (
        "request",
        "never-served",
    )


async def test_feedback_is_accepted_for_served_requests_failed_or_not_and_generated_ids(
    stub: pb_grpc.RouterServiceStub, sims: Sims
) -> None:
    generated = (await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)).routing.request_id
    streamed = [m async for m in stub.Stream(pb.StreamRequest(chat=chat()), timeout=5)]
    stream_id = streamed[0].routing.request_id
    for name in sims:
        await sims.set_profile(name, error_rate=1.0)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id="fb-failed"), timeout=5)

    for request_id in (generated, stream_id, "fb-failed"):
        await stub.Feedback(pb.FeedbackRequest(request_id=request_id, score=0.5), timeout=5)


async def test_feedback_for_unknown_ids_is_accepted_when_not_required(sims: Sims) -> None:
    config = router_config_dict(sims)
    config["feedback"] = {"require_known_request": False}
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            await stub.Feedback(pb.FeedbackRequest(request_id="served-elsewhere", score=0.5), timeout=5)
    finally:
        await app.stop(grace_s=1)


INVALID_ID = "has spaces/and;more"


@pytest.mark.parametrize("rpc", ["Complete", "Stream", "Feedback"])
async def test_an_invalid_request_id_is_never_echoed_and_the_error_carries_a_generated_id(
    stub: pb_grpc.RouterServiceStub, rpc: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "Complete":
            await stub.Complete(pb.CompleteRequest(chat=chat(), request_id=INVALID_ID), timeout=5)
        elif rpc == "Stream":
            await stub.Stream(pb.StreamRequest(chat=chat(), request_id=INVALID_ID), timeout=5).read()
        else:
            await stub.Feedback(pb.FeedbackRequest(request_id=INVALID_ID, score=0.5), timeout=5)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = details(caught.value)
    assert GENERATED_ID.match(found["ErrorInfo"].metadata["request_id"])
    [violation] = found["BadRequest"].field_violations
    assert violation.field == "request_id" and "[A-Za-z0-9._:-]" in violation.description
    everything = rpc_status.from_call(caught.value).SerializeToString() + str(caught.value.details()).encode()
    assert INVALID_ID.encode() not in everything and b"has spaces" not in everything
