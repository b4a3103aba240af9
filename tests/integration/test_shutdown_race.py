"""Calls racing a router's stop (issue 19, item 4): no call that reaches the router after the stop
began ends CANCELLED or with the gRPC core's bare UNAVAILABLE. The calls it had started finish;
every later one is refused UNAVAILABLE with RetryInfo and ErrorInfo SHUTTING_DOWN (clients retry
that), and its error event is on the topic.

A real RouterApp over real gRPC, real simulated providers (slow: 2.5 s an answer, so calls are
still running when the stop begins) and the real embedded broker. Per round:
- `early` calls, sent from the router's loop, are running upstream when the stop begins;
- `queued` calls come from another thread (a sync channel) while the router's event loop is busy,
  so they reach the server and wait there to be handed to a handler, the state of a call that
  arrived a fraction of a millisecond before SIGTERM; then `stop()` runs (what SIGTERM does).
  grpc.aio's server.stop() CANCELs such calls outright (no details, no event);
- `late` calls arrive 0.5 s into the stop, after the first quarter-second drain, while the early
  calls still run: the core, once stopped, would refuse them itself, without RetryInfo.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.settings import parse_config
from tests.integration.conftest import SIM_NAMES, Sims, chat, router_config_dict
from tests.integration.test_events import events_config, read_events

ROUNDS, EARLY, QUEUED, LATE = 2, 4, 20, 5
UPSTREAM_S = 2.5  # far longer than the 0.25 s drain and the 0.5 s before the late calls


@dataclass(frozen=True)
class Outcome:
    code: str
    reason: str = ""
    retry_delay_s: float | None = None


def _outcome(error: grpc.RpcError) -> Outcome:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason, delay = "", None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return Outcome(error.code().name, reason, delay)


class Caller(threading.Thread):
    """The queued calls as soon as `go` is set, the late ones 0.5 s after `stopping` is set."""

    def __init__(self, port: int, round_: int) -> None:
        super().__init__()
        self._port = port
        self._round = round_
        self.ready, self.go, self.sent, self.stopping = (threading.Event() for _ in range(4))
        self.outcomes: dict[str, Outcome] = {}

    def run(self) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self._port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            self.ready.set()
            self.go.wait(10)
            futures = self._send(stub, "queued", QUEUED)
            self.sent.set()
            self.stopping.wait(10)
            time.sleep(0.5)
            futures += self._send(stub, "late", LATE)
            for request_id, future in futures:
                try:
                    future.result()
                    self.outcomes[request_id] = Outcome("OK")
                except grpc.RpcError as exc:
                    self.outcomes[request_id] = _outcome(exc)

    def _send(self, stub: pb_grpc.RouterServiceStub, kind: str, count: int) -> list[tuple[str, grpc.Future]]:
        ids = [f"{kind}-{self._round}-{i}" for i in range(count)]
        return [
            (i, stub.Complete.future(pb.CompleteRequest(chat=chat(), request_id=i), timeout=20)) for i in ids
        ]


async def _early(stub: pb_grpc.RouterServiceStub, request_id: str) -> tuple[str, Outcome]:
    try:
        await stub.Complete(pb.CompleteRequest(chat=chat(), request_id=request_id), timeout=20)
    except grpc.aio.AioRpcError as exc:
        return request_id, _outcome(exc)
    return request_id, Outcome("OK")


async def _upstream_requests(sims: Sims) -> int:
    return sum([(await sims.stats(name))["requests"] for name in SIM_NAMES])


async def test_calls_racing_the_stop_finish_or_are_refused_with_retry_info_and_an_event(
    sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    latency_ms = UPSTREAM_S * 1000
    for name in SIM_NAMES:
        await sims.set_profile(name, latency_ms_p50=latency_ms, latency_ms_p99=latency_ms)
    topic = f"test.router.shutdown.{uuid.uuid4().hex[:10]}"
    config = router_config_dict(sims, attempt_timeout_s=10.0, first_token_timeout_s=10.0)
    outcomes: dict[str, Outcome] = {}
    for round_ in range(ROUNDS):
        config["events"] = events_config(kafka_broker, topic, tmp_path / f"spool-{round_}")
        app = RouterApp(parse_config(config))
        await app.start()
        caller = Caller(app.port, round_)
        caller.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            before = await _upstream_requests(sims)
            early = [asyncio.ensure_future(_early(stub, f"early-{round_}-{i}")) for i in range(EARLY)]
            # All running upstream (the sims' own count, over HTTP: nothing to wait on instead).
            while await _upstream_requests(sims) < before + EARLY:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.to_thread(caller.ready.wait, 10)
            # From here until stop() the loop is busy on purpose: the queued calls wait in the server.
            caller.go.set()
            caller.sent.wait(10)
            time.sleep(0.2)  # noqa: ASYNC251
            caller.stopping.set()
            await app.stop(grace_s=10)
            outcomes.update(await asyncio.gather(*early))
        await asyncio.to_thread(caller.join, 30)
        outcomes.update(caller.outcomes)

    print(f"\n[shutdown race] {dict(Counter(o.code for o in outcomes.values()))}")
    assert len(outcomes) == ROUNDS * (EARLY + QUEUED + LATE)
    started = {i for i in outcomes if i.startswith("early-")}
    refused = set(outcomes) - started
    assert {outcomes[i] for i in started} == {Outcome("OK")}  # the stop let them finish
    assert {outcomes[i] for i in refused} == {Outcome("UNAVAILABLE", "SHUTTING_DOWN", 1.0)}

    records = await read_events(kafka_broker.bootstrap, topic, len(started) * 3 + len(refused))
    kinds: dict[str, list[str]] = {}
    for _, event, _, _ in records:
        kinds.setdefault(event.request_id, []).append(event.WhichOneof("body"))
    assert kinds == {
        **{i: ["decision", "attempt", "completion"] for i in started},
        **{i: ["error"] for i in refused},
    }
    errors = [event.error for _, event, _, _ in records if event.WhichOneof("body") == "error"]
    assert {(e.status_code, e.reason, e.attempt_count) for e in errors} == {
        ("UNAVAILABLE", "SHUTTING_DOWN", 0)
    }
