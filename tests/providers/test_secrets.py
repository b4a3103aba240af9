"""Configured secrets never travel on from an upstream's answer: a real loopback server answers with
error bodies (and mid-stream errors) that echo a canary API key in every form seen in the wild, and
no 8-character piece of the key survives into the ProviderError message, for all three adapters,
unary and stream; through a real gRPC router, not into the caller's status, details or the logs."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

import grpc
import httpx
import pytest
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.config_schema import HttpConfig
from router_service.domain import ChatRequest, Message, Role
from router_service.errors import ProviderError
from router_service.providers.anthropic import AnthropicAdapter
from router_service.providers.base import ProviderAdapter, ProviderEndpoint
from router_service.providers.gemini import GeminiAdapter
from router_service.providers.http import make_http_client
from router_service.providers.openai import OpenAIAdapter
from router_service.providers.scrub import SecretScrubber, secret_values
from router_service.settings import parse_config
from tests.providers.upstream import FakeUpstream, Reply, json_reply, sse_reply

KEY = "sk-canary-Q7f3Zp9LmX2vB8nR4tY6wK1dH5jS0cEa"
REQUEST = ChatRequest(messages=(Message(Role.USER, "hi"),))


def pieces(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_no_piece(text: str, secret: str = KEY) -> None:
    leaked = sorted(p for p in pieces(secret) if p in text)
    assert not leaked, f"{leaked[:3]} of the key in {text!r}"


def _escape_all(text: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


# How upstreams and proxies have been seen to echo a key.
FORMS: dict[str, str] = {
    "exact": KEY,
    "json-escaped-dashes": KEY.replace("-", "\\u002d"),
    "json-escaped-every-char": _escape_all(KEY),
    "json-escaped-twice": KEY.replace("-", "\\\\u002d"),
    "url-encoded": quote(KEY, safe=""),
    "url-encoded-every-char": "".join(f"%{ord(ch):02X}" for ch in KEY),
    "backslash-escaped": "".join("\\" + ch for ch in KEY),
    "html-entities": KEY.replace("-", "&#45;").replace("Q", "&#x51;"),
    "prefix-14": KEY[:14],
    "prefix-8": KEY[:8],
    "suffix-10": KEY[-10:],
    "middle-12": KEY[12:24],
    "split-newline": KEY[:12] + "\n" + KEY[12:],
    "split-escaped-newline": KEY[:12] + "\\n" + KEY[12:],
    "split-spaces-and-tab": KEY[:8] + " " + KEY[8:20] + "\t  " + KEY[20:],
    "masked-middle": KEY[:10] + "*" * 20 + KEY[-8:],
}


def bodies(form: str) -> dict[str, bytes]:
    """The same echo as each protocol's JSON error body, and as plain text."""
    message = f"Incorrect API key provided: {form}. You can find your API key at the dashboard."
    openai = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    return {
        "json": json.dumps(openai).replace(json.dumps(form)[1:-1], form).encode(),  # the form as sent
        "text": message.encode(),
    }


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(HttpConfig(transport=request.param)) as made:
        yield made


ADAPTERS: dict[str, Callable[[ProviderEndpoint, httpx.AsyncClient], ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


async def _error_of(adapter: ProviderAdapter, stream: bool) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if stream:
            async for _ in adapter.stream(REQUEST, "m"):
                pass
        else:
            await adapter.complete(REQUEST, "m")
    return caught.value


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize("kind", ADAPTERS)
async def test_no_form_of_the_key_reaches_the_error_message(
    upstream: FakeUpstream, client: httpx.AsyncClient, kind: str, form: str
) -> None:
    adapter = ADAPTERS[kind](ProviderEndpoint(kind, kind, upstream.url, KEY), client)
    for shape, body in bodies(form).items():
        content_type = "application/json" if shape == "json" else "text/plain"
        upstream.reply = Reply(401, body, [("content-type", content_type)])
        for stream in (False, True):
            error = await _error_of(adapter, stream)
            assert error.status_code == 401
            assert_no_piece(error.message)
            assert_no_piece(str(error))
            assert "[redacted]" in error.message or "*" in form


async def test_the_summary_keeps_what_helps(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.reply = json_reply(bodies(KEY)["json"], 401)
    adapter = OpenAIAdapter(ProviderEndpoint("openai", "openai", upstream.url, KEY), client)
    error = await _error_of(adapter, stream=False)
    assert error.message == (
        "HTTP 401: [invalid_request_error/invalid_api_key] Incorrect API key provided: [redacted]. "
        "You can find your API key at the dashboard."
    )


async def test_mid_stream_errors_are_scrubbed_too(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    openai = {"error": {"message": f"key {FORMS['json-escaped-dashes']} revoked", "type": "server_error"}}
    anthropic = {"type": "error", "error": {"type": "api_error", "message": f"bad key {KEY[:14]}"}}
    gemini = {"error": {"code": 500, "status": "INTERNAL", "message": f"key {KEY[3:30]} rejected"}}
    for kind, event in (("openai", openai), ("anthropic", anthropic), ("gemini", gemini)):
        frame = b"data: " + json.dumps(event).replace("\\\\u002d", "\\u002d").encode() + b"\n\n"
        upstream.reply = sse_reply([frame])
        adapter = ADAPTERS[kind](ProviderEndpoint(kind, kind, upstream.url, KEY), client)
        error = await _error_of(adapter, stream=True)
        assert_no_piece(error.message)
        assert "[redacted]" in error.message


async def test_auth_header_values_and_other_accounts_keys_are_scrubbed(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    gateway_token = "gw-tok-9f8e7d6c5b4a39281706"
    other_key = "sk-proj-OtherAccountKey0123456789abcdef"
    upstream.reply = json_reply({"error": {"message": f"token {gateway_token} and {other_key} refused"}}, 401)
    endpoint = ProviderEndpoint(
        "gw", "openai", upstream.url, "", headers={"X-Gateway-Auth": f"Bearer {gateway_token}"}
    )
    error = await _error_of(OpenAIAdapter(endpoint, client), stream=False)
    assert_no_piece(error.message, gateway_token)
    assert_no_piece(error.message, other_key)


def test_the_scrubber_leaves_ordinary_text_alone() -> None:
    scrubber = SecretScrubber(secret_values(KEY, [("content-type", "application/json")]))
    text = "HTTP 400: [invalid_request_error] max_tokens is too large: 99999 (application/json)"
    assert scrubber.scrub(text) == text


def test_the_scrubber_redacts_a_short_secret_only_whole() -> None:
    scrubber = SecretScrubber(["abc12"])
    assert scrubber.scrub("key abc12 and abc1") == "key [redacted] and abc1"


# --- through a real router: the caller's status and the logs ------------------------------------


async def test_the_caller_and_the_logs_never_see_the_key(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = parse_config(
        {
            "server": {"listen": "127.0.0.1:0", "grace_period_s": 1},
            "metrics": {"listen": ""},
            # Every call must reach the upstream: auth failures do not open the breaker here.
            "resilience": {
                "max_retries": 0,
                "error_classes": {"auth": {"cooldown": False, "counts_against_health": False}},
            },
            "providers": {"p": {"kind": "openai", "base_url": upstream.url + "/v1", "api_key": KEY}},
            "models": [{"name": "m", "provider": "p", "price_per_mtok": {"input": "1", "output": "1"}}],
        }
    )
    app = RouterApp(config)
    await app.start()
    seen: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content="hi")])
            # 401: the attempt fails as auth; 400: the caller's request is blamed, and the upstream's
            # (summarised) message reaches the caller's status.
            for status, form in itertools.product((401, 400), FORMS.values()):
                for body in bodies(form).values():
                    upstream.reply = json_reply(body, status)
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await stub.Complete(pb.CompleteRequest(chat=chat), timeout=10)
                    seen.append(_everything(caught.value))
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        async for _ in stub.Stream(pb.StreamRequest(chat=chat), timeout=10):
                            pass
                    seen.append(_everything(caught.value))
    finally:
        await app.stop(grace_s=1)
    assert len(seen) == 8 * len(FORMS)
    for text in seen:
        assert_no_piece(text)
    assert_no_piece(caplog.text)
    assert all("[redacted]" in text for text in seen if "INVALID_ARGUMENT" in text)
    assert sum("rejected the request: HTTP 400: " in text for text in seen) == 4 * len(FORMS), seen[-1]


def _everything(error: grpc.aio.AioRpcError) -> str:
    """Status code, message, every detail and trailer, as text."""
    status = rpc_status.from_call(error)
    details = [str(d) for d in status.details] if status is not None else []
    trailers = [f"{k}={v!r}" for k, v in (error.trailing_metadata() or ())]
    return "\n".join([str(error.code()), str(error.details()), *details, *trailers])
