"""The OpenAI-compatible HTTP door: aiohttp on its own port, the same engine, gate and ledger.

A request goes: read the body (at most `max_body_bytes`, else 413) -> JSON -> who is calling
(`Authorization: Bearer <virtual key>` through the same AuthGate as gRPC, scope `complete` or
`stream`) -> the shared request rules (request.py) -> what the key may use (identity/access.py)
-> `Engine.complete` / `Engine.stream` with a CallContext carrying the identity, so the one
observer publishes one set of events, as for a gRPC call. The request id is remembered in the
request ledger, so gRPC `Feedback` may score a request served here.

Why aiohttp: it is already a dependency (the upstream client), and on this machine it served a
hello-world POST at 1.34x uvicorn+starlette's rate at c=32, p50 +0.02 ms at c=1
(bench/http_servers.py, bench/results/http_servers.json; README "OpenAI-compatible endpoint").
HTTP/1.1 keep-alive is aiohttp's (idle connections closed after `keepalive_timeout_s`);
`handler_cancellation` is on, so a caller that disconnects cancels its handler, and with it the
upstream call (a closed stream does the same through the failed write).

Stop: the listening socket closes first, then in-flight requests and streams get up to the grace
period (the same as gRPC's; app.py stops both together), then what is left is cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from router_service.api.trace_context import trace_ids
from router_service.call import CallContext, StreamFinish, StreamStart
from router_service.config_schema import OpenAIHttpConfig
from router_service.domain import ChatRequest, TextDelta, ToolCallDelta
from router_service.engine import Engine
from router_service.errors import (
    FieldViolation,
    InvalidRequestError,
    RouterError,
    UnauthenticatedError,
    UnknownModelError,
)
from router_service.identity.access import authorize
from router_service.identity.authenticator import bearer_secret
from router_service.identity.gate import AuthGate, AuthMode
from router_service.identity.model import UNRESTRICTED, Identity, Scope
from router_service.openai_door import response
from router_service.openai_door.errors import to_http_error
from router_service.openai_door.idempotency import (
    UNARY,
    answer_headers,
    caller_request_id,
    request_fingerprint,
    stream_answer,
    unary_answer,
)
from router_service.openai_door.metrics import measured, note, note_code
from router_service.openai_door.models import model_list
from router_service.openai_door.request import DoorRequest, chat_from_openai, parse_body
from router_service.request_ids import new_request_id  # one request id format for both doors
from router_service.request_ledger import Answer, RequestLedger, Ticket

log = logging.getLogger(__name__)

JSON = "application/json"
_MIN_GRACE_S = 0.001  # "no grace": cancel what is in flight at once
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


class OpenAIDoor:
    """One HTTP server; `start()` returns the bound port, `stop(grace_s)` drains and closes."""

    def __init__(
        self,
        engine: Engine,
        config: OpenAIHttpConfig,
        *,
        default_deadline_s: float,
        gate: AuthGate | None = None,
        ledger: RequestLedger | None = None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._gate = gate or AuthGate(AuthMode.OFF, None)
        self._ledger = ledger or RequestLedger()
        self._default_deadline_s = default_deadline_s
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._config.max_body_bytes, middlewares=[measured])
        app.add_routes(  # the names are the metrics' route label
            [
                web.post("/v1/chat/completions", self._chat, name="chat_completions"),
                web.get("/v1/models", self._models, name="models"),
                web.get("/v1/models/{model:.+}", self._model, name="model"),
                web.route("*", "/{tail:.*}", self._not_found, name="unknown"),
            ]
        )
        return app

    async def start(self, *, reuse_port: bool = False) -> int:
        """Listen on the configured HOST:PORT (port 0: any free one, then `self.port`).
        `reuse_port`: the `--workers N` processes share the port, as their gRPC servers do."""
        host, _, port = self._config.listen.rpartition(":")
        runner = web.AppRunner(
            self.app(),
            access_log=None,  # a line per request is what the events are for
            handler_cancellation=True,
            keepalive_timeout=self._config.keepalive_timeout_s,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host.strip("[]"), int(port), reuse_port=reuse_port or None).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("OpenAI-compatible HTTP endpoint on %s:%d", host, self.port)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Stop listening and close idle keep-alive connections; requests and streams in flight
        get up to `grace_s` to finish, then are cancelled."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for site in list(runner.sites):
            await site.stop()
        server = runner.server
        if server is not None:
            server.pre_shutdown()
            # aiohttp reads a timeout <= 0 as none at all: a zero grace would wait for every stream
            await server.shutdown(max(grace_s, _MIN_GRACE_S))
        await runner.cleanup()  # nothing left to wait for: releases the rest

    # --- handlers -------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        request_id = new_request_id()
        claim: Ticket | None = None
        try:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return _error_response(request, _too_large(self._config.max_body_bytes), request_id, 413)
            body = parse_body(raw)
            caller_id = caller_request_id(request.headers)
            request_id = caller_id or request_id
            stream = body.get("stream") is True
            caller = await self._identify(request, Scope.STREAM if stream else Scope.COMPLETE)
            config = self._engine.config
            door = chat_from_openai(body, request.headers, config.catalog.aliases.keys())
            chat = self._authorized(caller, door.chat)
            if caller_id:  # a retry of it is answered from the ledger (idempotency.py)
                fingerprint = request_fingerprint(caller, body, request.headers)
                acquired = await self._ledger.acquire(request_id, fingerprint, caller)
                if not isinstance(acquired, Ticket):
                    return await _replay(request, acquired)
                claim = acquired
            else:
                self._ledger.remember(request_id, caller)
            ctx = self._context(request, request_id, chat, door.stream, caller)
            if door.stream:
                return await self._stream(request, door, chat, ctx, claim)
            done = await self._engine.complete(chat, ctx)
            body_out = response.encode(response.completion_body(request_id, int(time.time()), done))
            headers = {
                **response.routing_headers(request_id, done.deployment, len(done.attempts)),
                **response.cost_headers(done.cost_nanos),
            }
            if claim is not None:
                claim.store(unary_answer(headers, body_out))
        except Exception as exc:
            return _error_response(request, exc, request_id)
        finally:
            if claim is not None:
                claim.release()  # failed or cancelled: nothing stored, a retry runs again
        return web.Response(body=body_out, content_type=JSON, headers=headers)

    async def _stream(
        self,
        request: web.Request,
        door: DoorRequest,
        chat: ChatRequest,
        ctx: CallContext,
        claim: Ticket | None = None,
    ) -> web.StreamResponse:
        """Errors before the first chunk are raised (the caller answers them with a status the SDK
        retries on); after it, the stream ends with an error event. With a `claim`, every event
        sent is kept, and stored when the stream ended well (a retry replays them)."""
        writer = response.ChunkWriter(ctx.request_id, int(time.time()), door.model, door.include_usage)
        out: web.StreamResponse | None = None
        headers: dict[str, str] = {}
        sent: list[bytes] | None = [] if claim is not None else None
        async with contextlib.aclosing(self._engine.stream(chat, ctx)) as items:
            try:
                async for item in items:
                    if isinstance(item, TextDelta):
                        data = writer.text(item.text)
                    elif isinstance(item, ToolCallDelta):
                        data = writer.tool_call(item)
                    elif isinstance(item, StreamStart):
                        headers = {
                            **_SSE_HEADERS,
                            **response.routing_headers(ctx.request_id, item.deployment, len(item.attempts)),
                        }
                        out = web.StreamResponse(headers=headers)
                        await out.prepare(request)
                        data = writer.start(item)
                    elif isinstance(item, StreamFinish):
                        data = writer.finish(item)
                    else:
                        continue
                    assert out is not None, "the engine sends StreamStart first"
                    await out.write(data)
                    if sent is not None:
                        sent.append(data)
            except Exception as exc:
                if out is None:
                    raise
                if isinstance(exc, ConnectionError):  # the caller went away mid-stream
                    note_code(request, "CANCELLED")
                else:
                    note(request, exc)
                if not isinstance(exc, (RouterError, ConnectionError)):
                    log.exception("unexpected error in stream %s", ctx.request_id)
                with contextlib.suppress(ConnectionError):
                    await out.write(writer.error(to_http_error(exc, ctx.request_id).body))
                return out
        assert out is not None
        await out.write_eof()
        if claim is not None and sent is not None:
            claim.store(stream_answer(headers, sent))
        return out

    async def _models(self, request: web.Request) -> web.Response:
        request_id = new_request_id()
        try:
            caller = await self._identify(request, Scope.ROUTE)
        except Exception as exc:
            return _error_response(request, exc, request_id)
        config = self._engine.config
        body = model_list(caller, config.catalog, config.policies.keys())
        return web.Response(body=response.encode(body), content_type=JSON)

    async def _model(self, request: web.Request) -> web.Response:
        request_id = new_request_id()
        try:
            caller = await self._identify(request, Scope.ROUTE)
            config = self._engine.config
            name = request.match_info["model"]
            listed = model_list(caller, config.catalog, config.policies.keys())["data"]
            entry = next((e for e in listed if e["id"] == name), None)
            if entry is None:  # unknown, or not this key's: the same answer, naming nothing else
                raise UnknownModelError("model", name)
        except Exception as exc:
            return _error_response(request, exc, request_id)
        return web.Response(body=response.encode(entry), content_type=JSON)

    async def _not_found(self, request: web.Request) -> web.Response:
        note_code(request, "NOT_FOUND")
        body = {
            "error": {
                "message": f"no route {request.method} {request.path}; this router serves "
                "POST /v1/chat/completions and GET /v1/models",
                "type": "invalid_request_error",
                "code": "unknown_url",
                "param": None,
            }
        }
        return web.Response(status=404, body=response.encode(body), content_type=JSON)

    # --- the call's facts ----------------------------------------------------------------------

    async def _identify(self, request: web.Request, scope: Scope) -> Identity:
        if self._gate.mode is AuthMode.OFF:
            return UNRESTRICTED
        authorization = request.headers.get("authorization")
        bearer = None
        if authorization is not None:
            bearer = bearer_secret(authorization)
            if bearer is None:
                raise UnauthenticatedError("the Authorization header must be 'Bearer <key>'")
        return await self._gate.identify(bearer, None, scope)

    def _authorized(self, caller: Identity, chat: ChatRequest) -> ChatRequest:
        if caller is UNRESTRICTED:
            return chat
        config = self._engine.config
        return authorize(caller, chat, config.catalog, config.routing.default_policy)

    def _context(
        self, request: web.Request, request_id: str, chat: ChatRequest, stream: bool, caller: Identity
    ) -> CallContext:
        now = self._engine.clock.monotonic()
        trace_id, span_id = trace_ids(_trace_headers(request.headers))
        return CallContext(
            request_id=request_id,
            deadline=now + self._default_deadline_s,
            started=now,
            tags=chat.tags,
            stream=stream,
            trace_id=trace_id,
            span_id=span_id,
            identity=caller,
        )


async def _replay(request: web.Request, answer: Answer) -> web.StreamResponse:
    """The first call's answer to a retry: the same headers and bytes (and x-router-replayed)."""
    headers = answer_headers(answer)
    if answer[0] == UNARY:
        return web.Response(body=answer[2], content_type=JSON, headers=headers)
    out = web.StreamResponse(headers=headers)
    await out.prepare(request)
    for event in answer[2:]:
        await out.write(event)
    await out.write_eof()
    return out


def _trace_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(name, headers[name]) for name in ("traceparent", "tracestate") if name in headers]


def _too_large(limit: int) -> InvalidRequestError:
    return InvalidRequestError([FieldViolation("body", f"must be at most {limit} bytes")])


def _error_response(
    request: web.Request, exc: BaseException, request_id: str, status: int | None = None
) -> web.Response:
    note(request, exc)
    if not isinstance(exc, RouterError):
        log.exception("unexpected error handling request %s", request_id, exc_info=exc)
    error = to_http_error(exc, request_id)
    body: dict[str, Any] = error.body
    return web.Response(
        status=status or error.status, body=response.encode(body), content_type=JSON, headers=error.headers
    )
