"""The running router learns from the Feedback it receives, over real gRPC: a real router with a
`learned` policy, three real simulated providers at different prices, Complete + Feedback, and
Route explaining each candidate's estimate, uncertainty, sample count and exploration."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict

# m1 is cheapest but bad at code; m2 and m3 are as good, m3 costs more: the deal is m2.
PRICES = {"m1": "0.10", "m2": "1.00", "m3": "5.00"}
CODE_QUALITY = {"m1": 0.2, "m2": 0.9, "m3": 0.9}
CODE = pb.RoutingHints(task_type=pb.TASK_TYPE_CODE)


@pytest.fixture
async def stub(sims: Sims) -> AsyncIterator[pb_grpc.RouterServiceStub]:
    config = router_config_dict(sims)
    for model in config["models"]:
        model["price_per_mtok"] = {"input": PRICES[model["name"]], "output": PRICES[model["name"]]}
    config["policies"] = {"default": {"models": ["m1", "m2", "m3"], "strategy": "learned", "max_attempts": 1}}
    # Probes may take every request here, so the test needs few calls.
    # No backoff: the estimates below are each arm's own scores from the prior (with backoff the
    # prior would be the deployment's pooled mean, here the same scores again: one task).
    config["learning"] = {"exploration": {"traffic_share": 1.0, "spend_share": 1.0}, "backoff": False}
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield pb_grpc.RouterServiceStub(channel)
    finally:
        await app.stop(grace_s=1)


async def route(stub: pb_grpc.RouterServiceStub, hints: pb.RoutingHints) -> pb.RouteDecision:
    response = await stub.Route(pb.RouteRequest(chat=chat("Fix this function", routing=hints)), timeout=10)
    return response.decision


async def test_feedback_moves_the_estimates_and_route_explains_them(stub: pb_grpc.RouterServiceStub) -> None:
    before = [await route(stub, CODE) for _ in range(20)]
    for decision in before:  # nothing scored: each candidate is its prior, as uncertain as it gets
        assert all(c.quality_samples == 0 and c.quality_sd > 0.1 for c in decision.candidates)
        probes = [c for c in decision.candidates if c.exploration]
        assert len(probes) <= 1 and all(f"{c.provider}/{c.model}" == decision.chosen for c in probes)
    assert any(c.exploration for d in before for c in d.candidates)  # untried candidates get probed

    served: Counter[str] = Counter()
    for n in range(40):
        request = pb.CompleteRequest(chat=chat(f"Fix bug {n}", routing=CODE))
        routing = (await stub.Complete(request, timeout=10)).routing
        served[routing.model] += 1
        feedback = pb.FeedbackRequest(request_id=routing.request_id, score=CODE_QUALITY[routing.model])
        await stub.Feedback(feedback, timeout=10)

    after = await route(stub, CODE)
    for candidate in after.candidates:  # each answer's score filed under its deployment and task
        n = served[candidate.model]
        assert candidate.quality_samples == pytest.approx(n, rel=0.01)
        # the prior (0.5: none configured) is worth one score
        want = (0.5 + n * CODE_QUALITY[candidate.model]) / (1 + n)
        assert candidate.quality == pytest.approx(want, abs=1e-6)
        assert candidate.quality_sd < 0.2 if n else candidate.quality_sd == pytest.approx(0.2)
    # A pick that is not a probe is what the candidates shown say: the cheapest within the
    # tolerance (0.02) of the best estimate.
    for decision in [await route(stub, CODE) for _ in range(20)]:
        if any(c.exploration for c in decision.candidates):
            continue
        best = max(c.quality for c in decision.candidates)
        band = [c for c in decision.candidates if c.quality >= best - 0.02]
        cheapest = min(band, key=lambda c: c.estimated_cost.units * 10**9 + c.estimated_cost.nanos)
        assert decision.chosen == f"{cheapest.provider}/{cheapest.model}"

    # Scores were filed under the declared task: another task has learned nothing.
    chat_decision = await route(stub, pb.RoutingHints(task_type=pb.TASK_TYPE_CHAT))
    assert all(c.quality_samples == 0 for c in chat_decision.candidates)


async def test_feedback_for_a_request_counts_once(stub: pb_grpc.RouterServiceStub) -> None:
    response = await stub.Complete(pb.CompleteRequest(chat=chat("Fix bug", routing=CODE)), timeout=10)
    for _ in range(3):  # a retried Feedback call
        await stub.Feedback(pb.FeedbackRequest(request_id=response.routing.request_id, score=0.9), timeout=10)
    decision = await route(stub, CODE)
    samples = {c.model: c.quality_samples for c in decision.candidates}
    assert samples[response.routing.model] == pytest.approx(1.0, rel=0.01)
    assert sum(samples.values()) == pytest.approx(1.0, rel=0.01)
