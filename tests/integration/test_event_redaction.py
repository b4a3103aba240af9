"""A caller's secrets and personal data in tags and prompts, through the real router over gRPC to
the real broker: what a data team reading the events topic sees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config, read_events

TOKEN = "tok-abcdefgh12345678"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PHONE = "+44 20 7946 0958"
TAGS = {"note": f"Bearer {TOKEN}", "contact": EMAIL, "feature": "summarise"}


@pytest.fixture
def topic() -> str:
    return f"test.router.redaction.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def content_router(
    sims: Sims, kafka_broker: EmbeddedBroker, topic: str, tmp_path: Path
) -> AsyncIterator[RouterApp]:
    """Content included, PII patterns left at their defaults."""
    config = router_config_dict(sims, attempt_timeout_s=2.0)
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool", include_content=True)
    app = RouterApp(parse_config(config))
    await app.start()
    yield app
    await app.stop(grace_s=2)


async def test_tags_and_content_reach_kafka_redacted(
    content_router: RouterApp, kafka_broker: EmbeddedBroker, topic: str
) -> None:
    prompt = f"I am {EMAIL}, card {CARD}, call me on {PHONE}"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{content_router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        await stub.Complete(pb.CompleteRequest(chat=chat(prompt, tags=TAGS), request_id="pii-1"), timeout=5)
        await stub.Feedback(pb.FeedbackRequest(request_id="pii-1", score=1.0, tags=TAGS), timeout=5)

    # decision, attempt, completion, feedback
    records = await read_events(kafka_broker.bootstrap, topic, expected=4)
    kinds = [event.WhichOneof("body") for _, event, _, _ in records]
    assert {"completion", "feedback"} <= set(kinds)
    raw = repr([plain for _, _, plain, _ in records])
    for leak in (TOKEN, EMAIL, CARD, PHONE):
        assert leak not in raw
    completion = next(event for _, event, _, _ in records if event.WhichOneof("body") == "completion")
    assert (
        completion.completion.prompt_text == "user: I am [REDACTED], card [REDACTED], call me on [REDACTED]"
    )
    assert dict(completion.tags) == {
        "note": "Bearer [REDACTED]",
        "contact": "[REDACTED]",
        "feature": "summarise",
    }
    feedback = next(event for _, event, _, _ in records if event.WhichOneof("body") == "feedback")
    assert dict(feedback.feedback.tags) == dict(completion.tags)
