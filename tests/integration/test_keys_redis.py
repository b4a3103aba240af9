"""The router itself over the shared Redis key store: a real redis-server (the `redis_server`
fixture), keys made with keystore/admin.py straight into Redis, a real router with
`auth.mode: required` reading them over real gRPC, its events on the real broker. A disable and a
rotation reach the running router without a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key, rotate_key, set_enabled
from router_service.keystore.redis_store import RedisKeyStore
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config, read_events

# The router caches key records this long: far longer than any wait below, so a change that
# reaches the router in the test reached it through Redis pub/sub, not through the cache expiring.
CACHE_TTL_S = 300.0
# How long a change may take to reach the router: pub/sub delivery on a loaded 2-core box, with a
# wide margin. A bound, not a measurement: the waits below return as soon as the change shows.
INVALIDATION_BOUND_S = 10.0


class Setup:
    def __init__(self, app: RouterApp, admin: RedisKeyStore, topic: str) -> None:
        self.app, self.admin, self.topic = app, admin, topic
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        self.stub = pb_grpc.RouterServiceStub(self.channel)

    async def complete(self, secret: str) -> pb.CompleteResponse:
        response: pb.CompleteResponse = await self.stub.Complete(
            pb.CompleteRequest(chat=chat()), metadata=(("authorization", f"Bearer {secret}"),), timeout=30
        )
        return response

    async def code_of(self, secret: str) -> grpc.StatusCode:
        try:
            await self.complete(secret)
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK


@pytest.fixture
async def setup(
    sims: Sims, redis_server: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> AsyncIterator[Setup]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"  # the shared server: this test's own keys
    admin = RedisKeyStore(aioredis.Redis.from_url(redis_server), prefix=prefix)
    await admin.start()
    topic = f"test.router.events.{uuid.uuid4().hex[:10]}"
    config = router_config_dict(sims, attempt_timeout_s=2.0)
    config["auth"] = {
        "mode": "required",
        "redis_url": redis_server,
        "redis_prefix": prefix,
        "key_cache_ttl_s": CACHE_TTL_S,
    }
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool")
    app = RouterApp(parse_config(config))
    await app.start()
    running = Setup(app, admin, topic)
    try:
        yield running
    finally:
        await running.channel.close()
        await app.stop(grace_s=2)
        await admin.stop()


async def within_bound(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check()` holds; fails after INVALIDATION_BOUND_S."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < INVALIDATION_BOUND_S, "the change did not reach the router"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_key_made_in_redis_is_served_attributed_rotated_and_disabled_without_restart(
    setup: Setup, kafka_broker: EmbeddedBroker
) -> None:
    identity = Identity(key_id="k_redis", team="search", customer="acme", user="u-7")
    _, secret = await create_key(setup.admin, identity)

    # A key the router has never seen: read from Redis on first use.
    response = await setup.complete(secret)
    assert response.message.content
    request_id = response.routing.request_id
    events = await read_events(kafka_broker.bootstrap, setup.topic, expected=3)
    assert {e.WhichOneof("body") for _, e, _, _ in events} == {"decision", "attempt", "completion"}
    attribution = ("k_redis", "search", "acme", "u-7")
    for _, event, _, _ in events:
        assert event.request_id == request_id
        assert (event.api_key_id, event.team, event.customer, event.user) == attribution

    # Rotation: the new secret works once the change arrives; the old one through its grace period.
    _, rotated = await rotate_key(setup.admin, "k_redis", grace_s=3600)

    async def rotated_works() -> bool:
        return await setup.code_of(rotated) is grpc.StatusCode.OK

    await within_bound(rotated_works)
    assert await setup.code_of(secret) is grpc.StatusCode.OK

    # Disable: both secrets are refused, the router still caching the record for 300 s.
    await set_enabled(setup.admin, "k_redis", False)

    async def refused() -> bool:
        return await setup.code_of(rotated) is grpc.StatusCode.UNAUTHENTICATED

    await within_bound(refused)
    assert await setup.code_of(secret) is grpc.StatusCode.UNAUTHENTICATED

    # And enabled again, still the same router process.
    await set_enabled(setup.admin, "k_redis", True)
    await within_bound(rotated_works)


async def test_an_unknown_key_is_unauthenticated_and_others_keys_are_unaffected(setup: Setup) -> None:
    _, kept = await create_key(setup.admin, Identity(key_id="k_kept", team="search"))
    _, dropped = await create_key(setup.admin, Identity(key_id="k_dropped", team="search"))
    assert await setup.code_of(kept) is grpc.StatusCode.OK
    assert await setup.code_of(dropped) is grpc.StatusCode.OK
    assert await setup.code_of("lrk_k_absent." + "a" * 43) is grpc.StatusCode.UNAUTHENTICATED

    await set_enabled(setup.admin, "k_dropped", False)

    async def dropped_refused() -> bool:
        return await setup.code_of(dropped) is grpc.StatusCode.UNAUTHENTICATED

    await within_bound(dropped_refused)
    assert await setup.code_of(kept) is grpc.StatusCode.OK
