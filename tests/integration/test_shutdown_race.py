"""Calls racing a router's stop (issue 19, item 4): a call that reached the server before the stop
began must not end CANCELLED.

A real RouterApp over real gRPC. The calls come from another thread (a sync channel) while the
router's event loop is busy, so they reach the server and wait there to be handed to a handler,
the state of a call that arrived a fraction of a millisecond before SIGTERM; then `stop()` runs
(what SIGTERM does). grpc.aio's server.stop() cancels such calls outright (CANCELLED, no
details, no event); the router must serve them first.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import grpc

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import RuntimeConfig
from tests.integration.conftest import chat

CALLS = 20


def _fire(port: int, codes: Counter[str], sent: threading.Event) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=10)
        futures = [stub.Complete.future(pb.CompleteRequest(chat=chat()), timeout=20) for _ in range(CALLS)]
        sent.set()
        for future in futures:
            try:
                future.result()
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1


async def test_calls_that_arrived_before_the_stop_are_served_not_cancelled(
    router_config: RuntimeConfig,
) -> None:
    codes: Counter[str] = Counter()
    for _ in range(3):
        app = RouterApp(router_config)
        await app.start()
        sent = threading.Event()
        client = threading.Thread(target=_fire, args=(app.port, codes, sent))
        client.start()
        await asyncio.to_thread(sent.wait, 10)
        time.sleep(0.3)  # noqa: ASYNC251 - the loop is busy on purpose: the calls wait in the server
        await app.stop(grace_s=5)
        await asyncio.to_thread(client.join, 30)
    print(f"\n[shutdown race] {dict(codes)}")
    assert sum(codes.values()) == 3 * CALLS
    assert codes["CANCELLED"] == 0
    assert codes["OK"] == 3 * CALLS
