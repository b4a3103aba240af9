"""Canary secrets over real gRPC with `auth.mode: required` and tracing on: after answered,
denied and refused calls of a real key (Complete, Stream, Route, Feedback), no part of the key's
secret is in any exported span (real OTLP/HTTP receiver), in the Prometheus exposition the
router serves, in the logs or in any error. The events are checked the same way in
tests/integration/test_events.py, the logs and errors of a router without tracing in
tests/integration/test_keys.py."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_keys import Keys, bearer
from tests.integration.test_tracing import SERVER_SPAN, Received, attributes, collector

__all__ = ["collector"]  # the OTLP receiver fixture, used by name


async def _calls(stub: pb_grpc.RouterServiceStub, canary: str) -> list[str]:
    """Every kind of call a key makes; returns the text of each refusal (details and trailers)."""
    answered = await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(canary))
    [_ async for _ in stub.Stream(pb.StreamRequest(chat=chat()), metadata=bearer(canary))]
    await stub.Route(pb.RouteRequest(chat=chat()), metadata=bearer(canary))
    refusals: list[Any] = [
        stub.Complete(
            pb.CompleteRequest(chat=chat(model=pb.ModelSelector(model="m3"))), metadata=bearer(canary)
        ),
        stub.Feedback(
            pb.FeedbackRequest(request_id=answered.routing.request_id, score=1), metadata=bearer(canary)
        ),
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(canary + "x")),
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(canary[:-1])),
    ]
    texts = []
    for call in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        texts += [err.value.details() or "", repr(err.value.trailing_metadata())]
    return texts


def _leaks(secret: str, text: str) -> list[str]:
    """The 8-character pieces of the secret's random part found in `text`."""
    random_part = secret.split(".", 1)[1]
    pieces = (random_part[i : i + 8] for i in range(len(random_part) - 7))
    return [piece for piece in pieces if piece in text]


async def test_a_keys_secret_is_in_no_span_metric_log_or_error(
    sims: Sims, tmp_path: Any, collector: tuple[str, Received], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint, received = collector
    keys = Keys(tmp_path / "keys.yaml")
    await keys.admin.start()
    canary = await keys.create("k_canary", team="search", customer="acme", allowed_models=frozenset({"m1"}))
    config = router_config_dict(sims)
    config["auth"] = {"mode": "required", "keys_file": str(keys.path)}
    config["tracing"] = {"enabled": True, "endpoint": endpoint, "service_name": "canary"}
    app = RouterApp(parse_config(config), registry=CollectorRegistry())
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            errors = await _calls(pb_grpc.RouterServiceStub(channel), canary)
        metrics = generate_latest(REGISTRY).decode() + generate_latest(app.registry).decode()
    finally:
        await app.stop(grace_s=1)  # flushes the spans

    [server] = received.named(SERVER_SPAN.format("Complete"))[:1]
    assert attributes(server)["llmrouter.api_key.id"] == "k_canary"  # the spans did arrive
    spans = repr([(s.name, attributes(s), [attributes(e) for e in s.events]) for s in received.spans])
    for where, text in {
        "spans": spans,
        "metrics": metrics,
        "logs": caplog.text,
        "errors": repr(errors),
    }.items():
        assert _leaks(canary, text) == [], where
