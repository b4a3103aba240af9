"""Budgets over real gRPC: a real router (auth off, so the global level is what limits) on the
shared Redis store (a real redis-server) in front of simulated providers over HTTP. Over the
budget a call is RESOURCE_EXHAUSTED with QuotaFailure naming the level and entity, and RetryInfo
for when the month resets; past a soft threshold the call is routed with the downgrade policy and
its RoutingMetadata says so."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
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

# "Hello router": 4 tokens of message overhead + 3 of text; 100 output tokens at $0.60 per Mtok.
WORST_NANOS = 7 * 150 + 100 * 600
BUDGET_NANOS = 200_000


def limits(redis_url: str, **budget: Any) -> dict[str, Any]:
    return {
        "store": "redis",
        "redis_url": redis_url,
        "redis_prefix": f"t-{uuid.uuid4().hex[:8]}:{{limits}}:",
        "store_timeout_s": 5,
        "budgets": [{"level": "global", "usd": "0.0002", **budget}],
    }


async def start(sims: Sims, redis_url: str, **budget: Any) -> RouterApp:
    config = router_config_dict(sims)
    config["policies"]["cheap"] = {"models": ["m3"]}
    config["limits"] = limits(redis_url, **budget)
    app = RouterApp(parse_config(config))
    await app.start()
    return app


@pytest.fixture
async def channel() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for c in opened:
        await c.close()


def stub_of(app: RouterApp, opened: list[grpc.aio.Channel]) -> pb_grpc.RouterServiceStub:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    opened.append(channel)
    return pb_grpc.RouterServiceStub(channel)


def request() -> pb.CompleteRequest:
    return pb.CompleteRequest(chat=chat(options=pb.GenerationOptions(max_output_tokens=100)))


def cost_nanos(money: Any) -> int:
    return int(money.units) * 1_000_000_000 + int(money.nanos)


async def test_over_the_budget_is_resource_exhausted_with_quota_failure_and_retry_info(
    sims: Sims, redis_server: str, channel: list[grpc.aio.Channel]
) -> None:
    app = await start(sims, redis_server)
    try:
        stub = stub_of(app, channel)
        spent = 0
        refused: grpc.aio.AioRpcError | None = None
        for _ in range(50):
            try:
                response = await stub.Complete(request(), timeout=10)
            except grpc.aio.AioRpcError as err:
                refused = err
                break
            spent += cost_nanos(response.cost)
        assert refused is not None, "the budget never refused"
        assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        # Hard: what was spent plus the refused call's worst case is over the limit, and what was
        # spent is not (sequential calls: the overspend bound is zero here).
        assert spent <= BUDGET_NANOS < spent + WORST_NANOS + WORST_NANOS
        details = {d.type_url.rsplit(".", 1)[-1]: d for d in rpc_status.from_call(refused).details}
        quota = error_details_pb2.QuotaFailure()
        details["QuotaFailure"].Unpack(quota)
        [violation] = quota.violations
        assert violation.subject == "global"
        assert dict(violation.quota_dimensions) == {"level": "global", "entity": "global"}
        assert violation.quota_value == BUDGET_NANOS
        info = error_details_pb2.ErrorInfo()
        details["ErrorInfo"].Unpack(info)
        assert info.reason == "BUDGET_EXCEEDED" and info.metadata["period"] == "month (UTC)"
        retry = error_details_pb2.RetryInfo()
        details["RetryInfo"].Unpack(retry)
        assert 0 < retry.retry_delay.seconds <= 31 * 86400  # until the month resets
    finally:
        await app.stop()


async def test_past_the_soft_threshold_the_call_is_downgraded_and_says_so(
    sims: Sims, redis_server: str, channel: list[grpc.aio.Channel]
) -> None:
    # 61_050 of 200_000 reserved is past 25%: the very first call goes to the cheaper policy.
    app = await start(sims, redis_server, action="soft", downgrade_at=0.25, downgrade_policy="cheap")
    try:
        stub = stub_of(app, channel)
        response = await stub.Complete(request(), timeout=10)
        routing = response.routing
        assert (routing.policy, routing.provider) == ("cheap", "sim-c")
        assert routing.HasField("downgrade")
        assert (routing.downgrade.from_policy, routing.downgrade.entity) == ("default", "global")
        assert "25%" in routing.downgrade.reason
        # Route says what a Complete would get now, reserving nothing.
        decided = (await stub.Route(pb.RouteRequest(chat=request().chat), timeout=10)).decision
        assert (decided.policy, decided.chosen, decided.downgrade.from_policy) == (
            "cheap",
            "sim-c/m3",
            "default",
        )
        # A stream says so in its routing message too.
        stream = stub.Stream(pb.StreamRequest(chat=request().chat), timeout=10)
        first = await anext(aiter(stream))
        assert first.routing.downgrade.from_policy == "default"
        stream.cancel()
    finally:
        await app.stop()


async def test_under_the_threshold_route_says_nothing_of_a_downgrade(
    sims: Sims, redis_server: str, channel: list[grpc.aio.Channel]
) -> None:
    app = await start(sims, redis_server, action="soft", downgrade_at=1.0, downgrade_policy="cheap")
    try:
        decided = (
            await stub_of(app, channel).Route(pb.RouteRequest(chat=request().chat), timeout=10)
        ).decision
        assert decided.policy == "default" and not decided.HasField("downgrade")
    finally:
        await app.stop()
