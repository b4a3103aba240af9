"""The limits drill's callers: each a loop of mixed calls on the live routers (unary, streams read
to their end or left after the first delta, unary calls the caller cancels), counting what it got."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import grpc

from bench.limits_drill_params import MAX_OUTPUT, PROMPT
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc


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


@dataclass
class Burst:
    """What the callers got, and when (wall clock for the rollup's windows)."""

    outcomes: dict[str, Outcomes]
    started_wall: float
    ended_wall: float
    killed_at_s: float


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
