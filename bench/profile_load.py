"""The profile's load generator: a child process (`python -m bench.profile_request_path --client`)
that runs closed loops of calls over real loopback gRPC or HTTP, off the router's CPU, and the
handle the profile drives it through (one command line in, one JSON answer line out)."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import grpc

from bench.load import Call, closed_loop
from bench.overhead_clients import DOOR_BODY, DOOR_HEADERS, ECHO_METHOD, ECHO_PAYLOAD, PROMPT, post_ok
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc


async def client_main() -> None:
    """Reads `<target> <port> <requests> <concurrency>` lines, answers one JSON line per command."""
    channels: dict[int, grpc.aio.Channel] = {}
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        while line := (await reader.readline()).decode().strip():
            target, port, requests, concurrency = line.split()
            if target == "door":
                call = door_call(session, int(port))
            else:
                channel = channels.get(int(port))
                if channel is None:
                    channel = channels[int(port)] = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
                call = client_call(channel, target)
            sample = await closed_loop(call, int(concurrency), int(requests))
            print(json.dumps({"done": len(sample.latencies_ns), "errors": sample.errors}), flush=True)


def door_call(session: aiohttp.ClientSession, port: int) -> Call:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return functools.partial(post_ok, session, url, DOOR_BODY, DOOR_HEADERS)


def client_call(channel: grpc.aio.Channel, target: str) -> Call:
    if target == "echo":
        echo = channel.unary_unary(ECHO_METHOD)

        async def call_echo() -> None:
            await echo(ECHO_PAYLOAD, timeout=10)

        return call_echo
    complete = pb_grpc.RouterServiceStub(channel).Complete
    chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)])
    request = pb.CompleteRequest(chat=chat)

    async def call_router() -> None:
        response = await complete(request, timeout=10)
        if not response.message.content:
            raise RuntimeError("empty answer")

    return call_router


class LoadClient:
    """The load generator child process, driven over its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    @asynccontextmanager
    async def running(cls, cpu: int | None) -> AsyncIterator[LoadClient]:
        pin = ["--pin-client", str(cpu)] if cpu is not None else []
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.profile_request_path", "--client", *pin),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            yield cls(proc)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            await proc.wait()

    async def run(self, target: str, port: int, requests: int, concurrency: int) -> int:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{target} {port} {requests} {concurrency}\n".encode())
        await self._proc.stdin.drain()
        answer = json.loads(await self._proc.stdout.readline())
        if answer["errors"]:
            raise RuntimeError(f"{target}: {answer['errors']} of {requests} calls failed")
        return int(answer["done"])
