"""Fuzzing the real router over gRPC: requests for all four RPCs generated from the proto
descriptors (every field, extremes, NaN, unknown enum numbers, odd unicode; tests/api/
proto_strategies.py), and raw bodies (random bytes, truncated and corrupted valid encodings).

Whatever comes in, the answer is a precise status: never INTERNAL or UNKNOWN (those mean the
router did not understand its own failure); the server still answers a normal request
afterwards, and the memory of the process it runs in stays bounded. Fixed budgets (examples,
not seconds) and no deadlines, so it is the same test on a loaded machine.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from tests.api.proto_strategies import STRINGS, messages
from tests.integration.conftest import chat

_T = TypeVar("_T")
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
CALL_TIMEOUT_S = 20.0  # generous: a loaded 2-core box; no fuzzed call should come near it
RSS_GROWTH_BOUND = 400 * 2**20  # whole test, Hypothesis's memory included: generous
REPLAY_GROWTH_BOUND = 64 * 2**20  # the server's own, over a replay of every example

_REQUESTS: dict[str, type[Message]] = {
    "Route": pb.RouteRequest,
    "Complete": pb.CompleteRequest,
    "Stream": pb.StreamRequest,
    "Feedback": pb.FeedbackRequest,
}
_FUZZ = settings(
    max_examples=1000,
    deadline=None,
    database=None,  # the same budget every run, no replays of old failures in CI
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def rss_bytes() -> int:
    """Resident set size of this process, where the router server runs (the fixtures start it
    on the test's event loop)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@st.composite
def near_valid_chat(draw: Callable[..., Any]) -> pb.ChatRequest:
    """Any ChatRequest, but with valid messages of fuzzed text, so that requests get past the
    message checks and extreme options, hints, tools and tags reach routing and the providers."""
    request = draw(messages(pb.ChatRequest.DESCRIPTOR, max_depth=4))
    del request.messages[:]
    for text in draw(st.lists(STRINGS.filter(bool), min_size=1, max_size=3)):
        request.messages.add(role=pb.ROLE_USER, content=text)
    # Each part kept or dropped, so some requests carry one odd part and reach the providers.
    for part in ("model", "options", "tools", "tool_choice", "response_format", "routing", "tags"):
        if draw(st.booleans()):
            request.ClearField(part)
    if draw(st.booleans()):  # names that pass the codec: reach the tool and JSON-mode paths
        for i, tool in enumerate(request.tools):
            tool.name = f"tool_{i}"
    return request


@st.composite
def rpc_calls(draw: Callable[..., Any]) -> tuple[str, Message]:
    method = draw(st.sampled_from(sorted(_REQUESTS)))
    request = draw(messages(_REQUESTS[method].DESCRIPTOR))
    if method != "Feedback" and draw(st.integers(0, 3)):  # mostly: past the message checks
        request.chat.CopyFrom(draw(near_valid_chat()))  # type: ignore[attr-defined]
    return method, request


@st.composite
def raw_bodies(draw: Callable[..., Any]) -> tuple[str, bytes]:
    method = draw(st.sampled_from([*sorted(_REQUESTS), "Check"]))
    kind = draw(st.sampled_from(["random", "truncated", "corrupted"]))
    if kind == "random":
        return method, draw(st.binary(max_size=256))
    valid = _REQUESTS.get(method, pb.FeedbackRequest)(**_valid_fields(method)).SerializeToString()
    if kind == "truncated":
        return method, valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
    position = draw(st.integers(0, len(valid) - 1))
    return method, valid[:position] + bytes([draw(st.integers(0, 255))]) + valid[position + 1 :]


def _valid_fields(method: str) -> dict[str, Any]:
    if method in ("Feedback", "Check"):
        return {"request_id": "fuzz-1", "score": 0.5}
    return {"chat": chat("a valid request to break")}


class Tally:
    """Status codes seen, by source; printed at the end of each test (pytest -s shows them)."""

    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()

    def record(self, what: str, code: grpc.StatusCode, details: str | None) -> None:
        self.codes[code.name] += 1
        assert code not in NEVER, f"{what} answered {code.name}: {details}"


async def _status(
    channel: grpc.aio.Channel, path: str, body: bytes, stream: bool
) -> tuple[grpc.StatusCode, str | None]:
    try:
        if stream:
            async for _ in channel.unary_stream(path)(body, timeout=CALL_TIMEOUT_S):
                pass
        else:
            await channel.unary_unary(path)(body, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, None


def _on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` on the test's event loop (where the server runs) from hypothesis's thread."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _path(method: str) -> str:
    if method == "Check":
        return "/grpc.health.v1.Health/Check"
    return f"/router.v1.RouterService/{method}"


async def _still_serves(stub: pb_grpc.RouterServiceStub) -> None:
    done = await stub.Complete(pb.CompleteRequest(chat=chat("still there?")), timeout=CALL_TIMEOUT_S)
    assert done.message.content


Sent = tuple[str, bytes, bool]  # method path, body, server-streaming


async def _fuzz(
    channel: grpc.aio.Channel, stub: pb_grpc.RouterServiceStub, strategy: st.SearchStrategy[Sent], label: str
) -> None:
    """Every example from `strategy` once (Hypothesis, shrinking a failure to its simplest
    input), then all of them again: the growth over the replay is the server's alone, since
    Hypothesis's own bookkeeping (about 80 MiB per 1,000 examples here) grows only in the
    first pass."""
    await _still_serves(stub)  # warm: the first call's allocations are not growth
    rss_before = rss_bytes()
    tally = Tally()
    sent: list[Sent] = []
    loop = asyncio.get_running_loop()

    # Hypothesis drives its examples from a worker thread, so the loop keeps serving meanwhile.
    @_FUZZ
    @given(call=strategy)
    def one(call: Sent) -> None:
        path, body, stream = call
        sent.append(call)
        code, details = _on_loop(loop, _status(channel, path, body, stream))
        tally.record(f"{path} {body!r:.3000}", code, details)

    await asyncio.to_thread(one)
    await _still_serves(stub)
    rss_fuzzed = rss_bytes()
    for path, body, stream in sent:
        code, details = await _status(channel, path, body, stream)
        assert code not in NEVER, f"replayed {path} {body!r:.3000} answered {code.name}: {details}"
    await _still_serves(stub)
    rss_replayed = rss_bytes()
    print(
        f"\n{label} by status: {dict(tally.codes)}; RSS {rss_before / 2**20:.0f} MiB -> "
        f"{rss_fuzzed / 2**20:.0f} (fuzzed) -> {rss_replayed / 2**20:.0f} (replayed {len(sent)})"
    )
    assert rss_replayed - rss_before < RSS_GROWTH_BOUND
    assert rss_replayed - rss_fuzzed < REPLAY_GROWTH_BOUND


def _encoded(call: tuple[str, Message]) -> Sent:
    method, request = call
    return _path(method), request.SerializeToString(), method == "Stream"


async def test_fuzzed_requests_get_precise_statuses(
    channel: grpc.aio.Channel, stub: pb_grpc.RouterServiceStub
) -> None:
    await _fuzz(channel, stub, rpc_calls().map(_encoded), "fuzzed requests")


async def test_raw_bodies_get_precise_statuses(
    channel: grpc.aio.Channel, stub: pb_grpc.RouterServiceStub
) -> None:
    raw = raw_bodies().map(lambda r: (_path(r[0]), r[1], r[0] == "Stream"))
    await _fuzz(channel, stub, raw, "raw bodies")
