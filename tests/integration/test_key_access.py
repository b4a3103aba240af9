"""What a key may reach, over real gRPC (real router, real key file, real simulated providers),
for the paths tests/integration/test_keys.py does not take: a policy (the third way to ask for
a model, after a pin and an alias), a key's own default policy, the Stream RPC's scope,
`auth.mode: optional` (anonymous callers), and the warning `off` gives beyond loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.identity.model import Scope
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_keys import Keys, bearer, failure


def premium_chat(**kwargs: Any) -> pb.ChatRequest:
    return chat(routing=pb.RoutingHints(policy="premium"), **kwargs)


async def _router(sims: Sims, keys: Keys, mode: str) -> RouterApp:
    config = router_config_dict(sims)
    config["policies"]["premium"] = {"models": ["m3"]}  # only the premium model
    config["auth"] = {"mode": mode, "keys_file": str(keys.path), "keys_file_poll_s": 0}
    app = RouterApp(parse_config(config))
    await app.start()
    return app


@pytest.fixture
async def keys(tmp_path: Path) -> Keys:
    keys = Keys(tmp_path / "keys.yaml")
    await keys.admin.start()
    await keys.create("k_cheap", team="search", allowed_models=frozenset({"m1"}))
    await keys.create("k_default_only", team="search", allowed_policies=frozenset({"default"}))
    await keys.create("k_premium_default", team="search", default_policy="premium")
    await keys.create("k_no_stream", team="search", scopes=frozenset({Scope.COMPLETE}))
    return keys


@pytest.fixture
async def stub(sims: Sims, keys: Keys) -> AsyncIterator[pb_grpc.RouterServiceStub]:
    app = await _router(sims, keys, "required")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.RouterServiceStub(channel)
    await app.stop(grace_s=1)


async def test_a_key_limited_to_cheap_models_cannot_reach_the_premium_one_by_policy(
    stub: pb_grpc.RouterServiceStub, keys: Keys, sims: Sims
) -> None:
    cheap = bearer(keys.secrets["k_cheap"])
    code, info, _, _ = await failure(stub.Complete(pb.CompleteRequest(chat=premium_chat()), metadata=cheap))
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_ELIGIBLE_CANDIDATE")
    assert "not allowed for this API key" in str(info.metadata)
    assert (await sims.stats("sim-c"))["requests"] == 0
    code, info, _, _ = await failure(stub.Route(pb.RouteRequest(chat=premium_chat()), metadata=cheap))
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_ELIGIBLE_CANDIDATE")


async def test_a_policy_outside_the_keys_policies_is_denied_naming_it(
    stub: pb_grpc.RouterServiceStub, keys: Keys
) -> None:
    limited = bearer(keys.secrets["k_default_only"])
    for call in (
        stub.Complete(pb.CompleteRequest(chat=premium_chat()), metadata=limited),
        stub.Route(pb.RouteRequest(chat=premium_chat()), metadata=limited),
    ):
        code, info, resources, _ = await failure(call)
        assert (code, info.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        assert (info.metadata["kind"], info.metadata["name"]) == ("policy", "premium")
        assert [(r.resource_type, r.resource_name) for r in resources] == [("policy", "premium")]
    response = await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=limited)
    assert response.routing.policy == "default"


async def test_a_keys_default_policy_applies_when_the_request_names_none(
    stub: pb_grpc.RouterServiceStub, keys: Keys
) -> None:
    own = bearer(keys.secrets["k_premium_default"])
    decision = (await stub.Route(pb.RouteRequest(chat=chat()), metadata=own)).decision
    assert (decision.policy, decision.chosen) == ("premium", "sim-c/m3")
    named = chat(routing=pb.RoutingHints(policy="default"))
    decision = (await stub.Route(pb.RouteRequest(chat=named), metadata=own)).decision
    assert (decision.policy, decision.chosen) == ("default", "sim-a/m1")


async def test_stream_needs_a_key_and_the_stream_scope(stub: pb_grpc.RouterServiceStub, keys: Keys) -> None:
    async def stream_failure(metadata: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, Any]:
        async def drain() -> None:
            async for _ in stub.Stream(pb.StreamRequest(chat=chat()), metadata=metadata):
                pass

        code, info, _, _ = await failure(drain())
        return code, info

    code, info = await stream_failure(())
    assert (code, info.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    code, info = await stream_failure(bearer(keys.secrets["k_no_stream"]))
    assert (code, info.metadata["scope"]) == (grpc.StatusCode.PERMISSION_DENIED, "stream")
    allowed = bearer(keys.secrets["k_cheap"])
    chunks = [c async for c in stub.Stream(pb.StreamRequest(chat=chat()), metadata=allowed)]
    assert chunks[-1].WhichOneof("event") == "end"


async def test_optional_mode_serves_anonymous_callers_with_their_own_scopes(sims: Sims, keys: Keys) -> None:
    app = await _router(sims, keys, "optional")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            answered = await stub.Complete(pb.CompleteRequest(chat=chat()))
            assert answered.message.content
            feedback = pb.FeedbackRequest(request_id=answered.routing.request_id, score=1)
            code, info, _, _ = await failure(stub.Feedback(feedback))
            assert (code, info.metadata["scope"]) == (grpc.StatusCode.PERMISSION_DENIED, "feedback")
            wrong = bearer("lrk_k_cheap." + "x" * 43)  # a bad key is refused, never anonymous
            refused = stub.Complete(pb.CompleteRequest(chat=chat()), metadata=wrong)
            code, _, _, message = await failure(refused)
            assert (code, message) == (grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
    finally:
        await app.stop(grace_s=1)


@pytest.mark.parametrize(("listen", "warned"), [("0.0.0.0:0", True), ("127.0.0.1:0", False)])
async def test_auth_off_beyond_loopback_is_warned_about(
    sims: Sims, listen: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = router_config_dict(sims)
    config["server"]["listen"] = listen
    app = RouterApp(parse_config(config))
    await app.start()
    await app.stop(grace_s=1)
    assert ("auth.mode is off on a non-loopback address" in caplog.text) is warned
