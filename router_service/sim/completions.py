"""POST /v1/chat/completions: validate, draw a behaviour, then answer, fail, hang or break.

The hot path for benchmarks is the `instant` profile: no randomness is drawn, nothing sleeps,
and the unary body is one `json` encode. Faults cost only on the requests that draw them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from router_service.sim import wire
from router_service.sim.answer import Answer, compose_answer
from router_service.sim.profile import Behaviour, Outcome, ProfileTable, SimProfile, decide
from router_service.sim.request import InvalidRequestError, SimRequest, parse_request
from router_service.sim.stats import ModelCounters, SimStats

JSON = "application/json"
TASK_HEADER = "x-sim-task"
QUALITY_HEADER = "x-sim-quality"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One accepted request on its way out; the outcome writers below take one of these."""

    request: web.Request
    sim_request: SimRequest
    profile: SimProfile
    answer: Answer
    behaviour: Behaviour
    meta: wire.ResponseMeta

    def sim_headers(self) -> dict[str, str]:
        return {TASK_HEADER: self.sim_request.task, QUALITY_HEADER: str(self.answer.quality)}


Writer = Callable[[Exchange], Awaitable[web.StreamResponse]]


class CompletionsHandler:
    def __init__(self, profiles: ProfileTable, stats: SimStats, rng: random.Random) -> None:
        self._profiles = profiles
        self._stats = stats
        self._rng = rng
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._writers: dict[Outcome, Writer] = {
            Outcome.OK: _write_ok,
            Outcome.ERROR: _write_error,
            Outcome.RATE_LIMITED: _write_rate_limited,
            Outcome.HANG: self._hang,
            Outcome.CUT_STREAM: _write_cut,
            Outcome.MALFORMED: _write_malformed,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            sim_request = parse_request(_decode(await request.read()), request.headers.get(TASK_HEADER))
        except InvalidRequestError as exc:
            self._stats.invalid_requests += 1
            return bad_request(exc.message, exc.param)
        profile = self._profiles.get(sim_request.model)
        answer = compose_answer(sim_request, profile)
        if answer.usage.prompt_tokens > profile.context_window:
            self._stats.invalid_requests += 1
            return _context_too_long(answer.usage.prompt_tokens, profile.context_window)
        behaviour = decide(profile, self._rng)
        meta = wire.ResponseMeta(f"chatcmpl-sim{next(self._ids):x}", int(time.time()), sim_request.model)
        exchange = Exchange(request, sim_request, profile, answer, behaviour, meta)
        return await self._run(exchange, self._stats.model(sim_request.model))

    def release_hangs(self) -> None:
        """End every hang by closing its connection, so that server shutdown does not wait on
        them (aiohttp would otherwise wait out its graceful timeout twice per hanging request)."""
        self._closing.set()

    async def _hang(self, ex: Exchange) -> web.StreamResponse:
        """Never answer: the handler ends when aiohttp cancels it on client disconnect, or when
        the server shuts down (the client then sees the connection close without a response)."""
        await self._closing.wait()
        _close_connection(ex.request)
        return web.Response(status=503)

    async def _run(self, exchange: Exchange, counters: ModelCounters) -> web.StreamResponse:
        """Count the request and its end: completed, or cut short by the client going away."""
        counters.requests += 1
        counters.outcomes[exchange.behaviour.outcome.value] += 1
        counters.in_flight += 1
        try:
            if exchange.behaviour.latency_s > 0:
                await asyncio.sleep(exchange.behaviour.latency_s)
            response = await self._writers[exchange.behaviour.outcome](exchange)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client disconnects (handler_cancellation).
            counters.disconnects += 1
            raise
        except ConnectionError:
            # The client went away while we were writing a stream; the response cannot continue.
            counters.disconnects += 1
            _close_connection(exchange.request)
            return web.Response(status=499)
        finally:
            counters.in_flight -= 1
        counters.completed += 1
        return response


def _decode(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidRequestError("We could not parse the JSON body of your request.") from exc


def bad_request(message: str, param: str | None, code: str | None = None) -> web.Response:
    body = wire.error_body(message, "invalid_request_error", param, code)
    return web.Response(status=400, body=body, content_type=JSON)


def _context_too_long(tokens: int, window: int) -> web.Response:
    message = (
        f"This model's maximum context length is {window} tokens. However, your messages resulted "
        f"in {tokens} tokens. Please reduce the length of the messages."
    )
    return bad_request(message, "messages", "context_length_exceeded")


async def _write_ok(ex: Exchange) -> web.StreamResponse:
    if not ex.sim_request.stream:
        body = wire.completion_body(ex.meta, ex.answer)
        return web.Response(body=body, content_type=JSON, headers=ex.sim_headers())
    events = wire.stream_events(ex.meta, ex.answer, ex.sim_request.include_usage)
    response = await _start_stream(ex)
    await _write_events(response, events, ex.profile.token_interval_ms / 1000.0)
    return response


async def _start_stream(ex: Exchange) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Cache-Control": "no-cache", **ex.sim_headers()})
    response.content_type = "text/event-stream"
    await response.prepare(ex.request)
    return response


async def _write_events(response: web.StreamResponse, events: list[bytes], interval_s: float) -> None:
    """With no interval, one write (fast path); otherwise one chunk per token, spaced out."""
    if interval_s <= 0:
        await response.write(b"".join(events))
        return
    for i, event in enumerate(events):
        if i > 1:  # the role chunk and the first token go out together, like a real TTFT
            await asyncio.sleep(interval_s)
        await response.write(event)


async def _write_error(ex: Exchange) -> web.StreamResponse:
    body = wire.error_body(
        "The server had an error while processing your request. Sorry about that! (simulated)",
        "server_error",
    )
    return web.Response(status=500, body=body, content_type=JSON, headers=ex.sim_headers())


async def _write_rate_limited(ex: Exchange) -> web.StreamResponse:
    wait = f"{ex.profile.retry_after_s:g}"
    body = wire.error_body(
        f"Rate limit reached for {ex.meta.model} (simulated). Please try again in {wait}s.",
        "requests",
        None,
        "rate_limit_exceeded",
    )
    headers = {"Retry-After": wait, **ex.sim_headers()}
    return web.Response(status=429, body=body, content_type=JSON, headers=headers)


async def _write_malformed(ex: Exchange) -> web.StreamResponse:
    if not ex.sim_request.stream:
        return web.Response(body=wire.MALFORMED_JSON, content_type=JSON, headers=ex.sim_headers())
    response = await _start_stream(ex)
    await response.write(wire.MALFORMED_SSE)
    return response


async def _write_cut(ex: Exchange) -> web.StreamResponse:
    """Send about half of the response, then close the connection: no [DONE], no final chunk."""
    if not ex.sim_request.stream:
        return await _write_cut_unary(ex)
    events = wire.stream_events(ex.meta, ex.answer, ex.sim_request.include_usage)
    content_events = len(events) - (3 if ex.sim_request.include_usage else 2)
    response = await _start_stream(ex)
    await _write_events(
        response, events[: max(2, content_events // 2 + 1)], ex.profile.token_interval_ms / 1000.0
    )
    _close_connection(ex.request)
    return response


async def _write_cut_unary(ex: Exchange) -> web.StreamResponse:
    """Announce the whole body's length, send half of it, close: the client sees a short read."""
    body = wire.completion_body(ex.meta, ex.answer)
    response = web.StreamResponse(headers=ex.sim_headers())
    response.content_type = JSON
    response.content_length = len(body)
    await response.prepare(ex.request)
    await response.write(body[: len(body) // 2])
    _close_connection(ex.request)
    return response


def _close_connection(request: web.Request) -> None:
    """Close after flushing what was written; aiohttp's final write_eof then fails quietly."""
    transport = request.transport
    if transport is not None:
        transport.close()
