"""The OpenAI door driven by the official Node SDK (`openai` on npm, pinned in
clients/typescript/package.json): clients/typescript/openai_door_check.mjs runs one case per
node process against the real router and simulated providers on loopback, and prints what the
SDK returned or raised as JSON; the assertions are here. Unary, streaming, errors as the SDK
surfaces them (class, status, code, param), tools, JSON mode, closing a stream (the upstream call
is cut), and the SDK's retries on 5xx (429: test_openai_door_limits.py)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from router_service.app import RouterApp
from tests.integration.conftest import Sims
from tests.integration.test_openai_door import door_router, price_nanos, wait_for_disconnect

__all__ = ["door_router"]  # the fixture, imported for the tests below

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "typescript"
SCRIPT = CLIENT_DIR / "openai_door_check.mjs"
NODE = shutil.which("node")
CASE_TIMEOUT_S = 60.0  # a node start on a loaded 2-core box is slow, never this slow


@pytest.fixture(scope="module")
def node_sdk() -> str:
    """node, with the pinned SDK installed (`npm ci`, as make proto-ts runs it, when missing)."""
    # `make test` needs node for `make proto-ts`: its absence is a broken setup, not a reason to skip.
    assert NODE is not None, "node is not installed: the Node SDK tests need it, as make proto-ts does"
    if not (CLIENT_DIR / "node_modules" / "openai" / "package.json").exists():
        subprocess.run(
            ["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True, timeout=300
        )
    return NODE


async def run_case(node: str, case: str, app: RouterApp, **env: str) -> Any:
    """One case in its own node process (asyncio's: the router serves on this loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        case,
        cwd=CLIENT_DIR,
        env={**os.environ, "ROUTER_BASE_URL": f"http://127.0.0.1:{app.openai_port}/v1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CASE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"node {case} exited {proc.returncode}:\n{err.decode()}"
    return json.loads(out)


async def test_unary(node_sdk: str, door_router: RouterApp) -> None:
    got = await run_case(node_sdk, "unary", door_router)
    assert got["role"] == "assistant" and got["content"]
    assert got["finishReason"] == "stop" and got["model"] == "m2"
    usage = got["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    cost = price_nanos(usage["prompt_tokens"], usage["completion_tokens"])
    assert got["router"]["deployment"] == "sim-b/m2" and got["router"]["cost_nanos"] == cost
    assert got["headers"]["deployment"] == "sim-b/m2" and got["headers"]["costNanos"] == str(cost)
    assert got["id"] == f"chatcmpl-{got['headers']['requestId']}"


async def test_stream_with_usage(node_sdk: str, door_router: RouterApp) -> None:
    got = await run_case(node_sdk, "stream", door_router)
    assert got["firstRole"] == "assistant" and got["text"]
    assert got["finishReasons"] == ["stop"]
    usage = got["lastUsage"]
    assert usage is not None and not got["lastHasChoices"]  # the usage chunk comes last, alone
    assert got["router"]["cost_nanos"] == price_nanos(usage["prompt_tokens"], usage["completion_tokens"])


async def test_errors_as_the_sdk_surfaces_them(node_sdk: str, door_router: RouterApp, sims: Sims) -> None:
    got = await run_case(node_sdk, "errors", door_router)
    invalid, unknown = got["invalid"], got["unknownModel"]
    assert (invalid["class"], invalid["status"]) == ("BadRequestError", 400)
    assert (invalid["code"], invalid["param"]) == ("invalid_request", "temperature")
    assert invalid["type"] == "invalid_request_error"
    assert "temperature: must be in [0, 2]" in invalid["message"]
    assert (unknown["class"], unknown["status"]) == ("NotFoundError", 404)
    assert (unknown["code"], unknown["param"]) == ("model_not_found", "model")
    assert invalid["requestId"] and unknown["requestId"]
    for name in sims:  # refused before routing: no upstream saw anything (and no retry was made)
        assert (await sims.stats(name))["requests"] == 0


async def test_stream_cut_after_first_chunk_raises(node_sdk: str, door_router: RouterApp, sims: Sims) -> None:
    for name in sims:
        await sims.set_profile(name, cut_stream_rate=1.0, answer_tokens=40)
    got = await run_case(node_sdk, "streamCut", door_router)
    assert got["text"]  # text arrived before the failure, which the SDK raised: never a clean end
    assert got["failure"]["class"] == "APIError"
    assert "failed mid-stream" in got["failure"]["message"]


async def test_sdk_retries_503_until_its_budget_is_spent(
    node_sdk: str, door_router: RouterApp, sims: Sims
) -> None:
    """Every deployment answers 429 (Retry-After 0.05 s): the router answers 503 with that delay;
    the SDK (maxRetries 2) tries three times, each reaching all three sims."""
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=0.05)
    got = await run_case(node_sdk, "retriesExhausted", door_router)
    assert (got["class"], got["status"], got["code"]) == ("InternalServerError", 503, "all_attempts_failed")
    assert got["statuses"] == [503, 503, 503]
    assert got["retryAfter"] == "1"  # whole seconds, rounded up; retry-after-ms carries the 50 ms
    assert [(await sims.stats(name))["requests"] for name in sims] == [3, 3, 3]


async def test_sdk_retry_is_answered_once_upstreams_recover(
    node_sdk: str, door_router: RouterApp, sims: Sims
) -> None:
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=0.05)
    admin = ",".join(f"http://127.0.0.1:{server.port}" for server in sims.values())
    got = await run_case(node_sdk, "retryRecovers", door_router, SIM_ADMIN_URLS=admin)
    assert got["statuses"] == [503, 200] and got["content"]
    assert sum([(await sims.stats(name))["requests"] for name in sims]) == 3 + 1


async def test_tools_unary_streamed_and_sent_back(node_sdk: str, door_router: RouterApp) -> None:
    got = await run_case(node_sdk, "tools", door_router)
    assert got["finishReason"] == "tool_calls"
    assert [c["name"] for c in got["calls"]] == ["get_weather"] and got["calls"][0]["id"]
    arguments = json.loads(got["calls"][0]["arguments"])
    assert isinstance(arguments["city"], str)
    assert json.loads(got["streamedArguments"]) == arguments
    assert got["followUp"]  # the assistant's tool_calls and the tool result were accepted


async def test_json_object_and_json_schema(node_sdk: str, door_router: RouterApp) -> None:
    got = await run_case(node_sdk, "jsonMode", door_router)
    assert isinstance(json.loads(got["object"]), dict)
    assert isinstance(json.loads(got["schema"])["answer"], str)


async def test_leaving_the_stream_cancels_the_upstream_call(
    node_sdk: str, door_router: RouterApp, sims: Sims
) -> None:
    await sims.set_profile("sim-a", token_interval_ms=200, answer_tokens=200)  # ~40 s of text
    got = await run_case(node_sdk, "cancelStream", door_router)
    assert got == {"chunks": 1, "aborted": True}
    stats = await wait_for_disconnect(sims, "sim-a")
    assert stats["disconnects"] == 1 and stats["completed"] == 0
