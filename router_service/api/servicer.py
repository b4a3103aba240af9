"""Thin gRPC servicer: identify the caller, decode and validate, call the engine, encode.

Every RouterService call first asks the auth gate who is calling and whether its scope allows
this RPC (identity/gate.py), then narrows the request to what the identity may use
(identity/access.py). Besides that, only the request ledger's two promises
(router_service/request_ledger.py): a Complete or Stream with a caller request id seen before is
answered from the ledger (or waits for the call still running) instead of reaching the engine
again, and Feedback must name a request this router served and come from a scorer who may score
it (identity/access.py `may_score`). A caller request id that is invalid
is never echoed: errors carry a router-generated id in ErrorInfo.metadata["request_id"], for
every RPC.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import grpc
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.api import codec
from router_service.api.credentials import presented_credentials
from router_service.api.status import to_rpc_error
from router_service.api.trace_context import trace_ids
from router_service.cache.rules import NO_DIRECTIVES, Directives
from router_service.domain import ChatRequest, RouteDecision, TextDelta, ToolCallDelta
from router_service.engine import CallContext, Engine, StreamFinish, StreamStart
from router_service.errors import PermissionDeniedError, RequestNotFoundError, RouterError
from router_service.governance import Governance, estimate_for
from router_service.identity.access import allowed_models, authorize, may_score
from router_service.identity.gate import AuthGate, AuthMode
from router_service.identity.model import UNRESTRICTED, Identity, Scope
from router_service.request_ids import (  # both doors'; re-exported for the interceptors
    new_request_id as new_request_id,
)
from router_service.request_ids import (
    request_id_for as request_id_for,
)
from router_service.request_ledger import Answer, RequestLedger, Ticket, fingerprint

log = logging.getLogger(__name__)

# (request id, score, tags, scorer): the scorer's identity goes on the feedback event's envelope.
FeedbackSink = Callable[[str, float, dict[str, str], Identity], None]


class RouterServicer(pb_grpc.RouterServiceServicer):
    def __init__(
        self,
        engine: Engine,
        default_deadline_s: float,
        feedback: FeedbackSink | None = None,
        *,
        ledger: RequestLedger | None = None,
        require_known_feedback: bool = True,
        gate: AuthGate | None = None,
        governance: Governance | None = None,
    ) -> None:
        self._engine = engine
        self._gate = gate or AuthGate(AuthMode.OFF, None)
        self._default_deadline_s = default_deadline_s
        self._feedback = feedback
        self._ledger = ledger or RequestLedger()
        self._require_known_feedback = require_known_feedback
        self._governance = governance  # budgets and rate limits; Route previews a downgrade

    async def Route(self, request: pb.RouteRequest, context: grpc.aio.ServicerContext) -> pb.RouteResponse:
        request_id = new_request_id()
        try:
            caller = await self._identify(context, Scope.ROUTE)
            cache = request.cache if request.HasField("cache") else None
            chat, directives = codec.cached_call_from_proto("", request.chat, cache)
            chat = self._authorized(caller, chat)
            allowed = allowed_models(caller, self._engine.config.catalog)
            decision = self._engine.route(chat, allowed_models=allowed)
            if self._governance is not None:  # what a soft budget would do to a Complete now
                decision = await self._previewed(chat, caller, allowed, decision, self._governance)
            # Would a Complete or Stream be answered from the cache now? (Only read; never fails.)
            ctx = CallContext(request_id=request_id, deadline=0.0, identity=caller, cache=directives)
            hit = await self._engine.cache_status(chat, ctx)
        except Exception as exc:
            await _abort(context, exc, request_id)
        response = pb.RouteResponse(decision=codec.decision_to_proto(request_id, decision))
        if hit is not None:
            codec.fill_cache_status(response.decision.cache, hit)
        return response

    async def _previewed(
        self,
        chat: ChatRequest,
        caller: Identity,
        allowed: frozenset[str] | None,
        decision: RouteDecision,
        governance: Governance,
    ) -> RouteDecision:
        config = self._engine.config
        estimate = estimate_for(
            (config.catalog.by_key[k] for k in decision.chain),
            config.routing_env.cost_model.prompt_tokens(chat),
            chat.params.max_output_tokens,
        )
        found = await governance.preview(caller, estimate, decision.policy)
        if found is None or found[0] == decision.policy:
            return decision
        moved = dataclasses.replace(chat, hints=dataclasses.replace(chat.hints, policy=found[0]))
        return dataclasses.replace(self._engine.route(moved, allowed_models=allowed), downgrade=found[1])

    async def Complete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteResponse:
        request_id = request_id_for(request.request_id)
        try:
            caller = await self._identify(context, Scope.COMPLETE)
            cache = request.cache if request.HasField("cache") else None
            chat, directives = codec.cached_call_from_proto(request.request_id, request.chat, cache)
            chat = self._authorized(caller, chat)
            claim = await self._claim(request, b"Complete", request_id, caller)
        except Exception as exc:
            await _abort(context, exc, request_id)
        if claim is not None and not isinstance(claim, Ticket):
            return pb.CompleteResponse.FromString(claim[0])  # the first call's answer, byte for byte
        try:
            response = await self._complete(chat, context, request_id, caller, directives)
            if claim is not None:
                claim.store((response.SerializeToString(),))
        except Exception as exc:
            await _abort(context, exc, request_id)
        finally:
            if claim is not None:
                claim.release()  # failed or cancelled: nothing stored, a retry runs again
        return response

    async def _complete(
        self,
        chat: ChatRequest,
        context: grpc.aio.ServicerContext,
        request_id: str,
        caller: Identity,
        directives: Directives,
    ) -> pb.CompleteResponse:
        ctx = self._context(context, request_id, chat.tags, False, caller, directives)
        done = await self._engine.complete(chat, ctx)
        response = codec.complete_response(done.result, done.cost_nanos)
        codec.fill_routing(
            response.routing,
            request_id,
            done.decision,
            done.attempts,
            done.deployment.provider,
            done.deployment.model,
            done.result.upstream_model or done.deployment.upstream_model,
            done.cache_hit,
        )
        return response

    async def Stream(
        self, request: pb.StreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        request_id = request_id_for(request.request_id)
        try:
            caller = await self._identify(context, Scope.STREAM)
            cache = request.cache if request.HasField("cache") else None
            chat, directives = codec.cached_call_from_proto(request.request_id, request.chat, cache)
            chat = self._authorized(caller, chat)
            claim = await self._claim(request, b"Stream", request_id, caller)
        except Exception as exc:
            await _abort(context, exc, request_id)
        if claim is not None and not isinstance(claim, Ticket):
            for data in claim:  # the first call's routing, deltas and end, as they were sent
                yield pb.StreamResponse.FromString(data)
            return
        # Recorded only with a caller id; stored once the end is ready, before it is sent: the
        # completion event is published by then, so a retry must not run the request again.
        sent: list[bytes] | None = None if claim is None else []
        try:
            ctx = self._context(context, request_id, chat.tags, True, caller, directives)
            async for item in self._engine.stream(chat, ctx):
                message = _stream_message(request_id, item)
                if sent is not None and claim is not None:
                    sent.append(message.SerializeToString())
                    if isinstance(item, StreamFinish):
                        claim.store(tuple(sent))
                yield message
        except Exception as exc:
            await _abort(context, exc, request_id)
        finally:
            if claim is not None:
                claim.release()  # interrupted, failed or cancelled: nothing stored

    async def _claim(
        self, request: pb.CompleteRequest | pb.StreamRequest, kind: bytes, request_id: str, caller: Identity
    ) -> Ticket | Answer | None:
        """None without a caller id (nobody can retry a router-generated id; it is only
        remembered for feedback); else the ledger's ticket to run the request, or the answer
        of the first call with this id (waiting for it while it runs). The caller's key id is
        part of the fingerprint: another key sending the same id and body never gets this answer
        (it is told the id is in use)."""
        if not request.request_id:
            self._ledger.remember(request_id, caller)
            return None
        body = fingerprint(
            kind + b"\0" + caller.key_id.encode(), request.SerializeToString(deterministic=True)
        )
        return await self._ledger.acquire(request_id, body, caller)

    async def Feedback(
        self, request: pb.FeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.FeedbackResponse:
        error_id = request_id_for(request.request_id)
        try:
            caller = await self._identify(context, Scope.FEEDBACK)
            request_id, score, tags = codec.feedback_from_proto(request)
            owner = self._ledger.owner(request_id)
            if owner is None and self._require_known_feedback:
                raise RequestNotFoundError(request_id)
            # An id this router does not know (require_known_request: false) is checked by the
            # quality consumer instead, which sees every replica's requests.
            if owner is not None and not may_score(caller, owner):
                raise _not_yours(caller, request_id)
        except Exception as exc:
            await _abort(context, exc, error_id)
        if self._feedback is not None:
            self._feedback(request_id, score, tags, caller)
        return pb.FeedbackResponse()

    async def _identify(self, context: grpc.aio.ServicerContext, scope: Scope) -> Identity:
        if self._gate.mode is AuthMode.OFF:  # nothing to check: not even the metadata is read
            return UNRESTRICTED
        presented = presented_credentials(context, certificates=self._gate.maps_certificates)
        return await self._gate.identify(presented.bearer, presented.certificate_subject, scope)

    def _authorized(self, caller: Identity, chat: ChatRequest) -> ChatRequest:
        if caller is UNRESTRICTED:
            return chat
        config = self._engine.config
        return authorize(caller, chat, config.catalog, config.routing.default_policy)

    def _context(
        self,
        context: grpc.aio.ServicerContext,
        request_id: str,
        tags: dict[str, str] | object,
        stream: bool,
        caller: Identity,
        directives: Directives = NO_DIRECTIVES,
    ) -> CallContext:
        now = time.monotonic()
        remaining = context.time_remaining()
        budget = self._default_deadline_s if remaining is None else min(remaining, self._default_deadline_s)
        trace_id, span_id = trace_ids(context.invocation_metadata())
        return CallContext(
            request_id=request_id,
            deadline=now + budget,
            started=now,
            tags=tags if isinstance(tags, dict) else {},
            stream=stream,
            trace_id=trace_id,
            span_id=span_id,
            identity=caller,
            cache=directives,
        )


def _not_yours(caller: Identity, request_id: str) -> PermissionDeniedError:
    """Someone else's request: says so, never whose (no key id or team of the owner)."""
    return PermissionDeniedError(
        f"API key {caller.key_id} may not score request {request_id}: it belongs to another owner",
        resource_kind="request",
        resource=request_id,
        owner="another key",
    )


def _stream_message(request_id: str, item: object) -> pb.StreamResponse:
    if isinstance(item, TextDelta):
        return pb.StreamResponse(delta=pb.Delta(text=item.text))
    if isinstance(item, ToolCallDelta):
        return pb.StreamResponse(delta=pb.Delta(tool_calls=[codec.tool_call_delta_to_proto(item)]))
    if isinstance(item, StreamStart):
        d = item.deployment
        routing = codec.routing_to_proto(
            request_id, item.decision, item.attempts, d.provider, d.model, d.upstream_model, item.cache_hit
        )
        return pb.StreamResponse(routing=routing)
    if isinstance(item, StreamFinish):
        d = item.deployment
        routing = codec.routing_to_proto(
            request_id,
            item.decision,
            item.attempts,
            d.provider,
            d.model,
            item.done.upstream_model or d.upstream_model,
            item.cache_hit,
        )
        end = pb.StreamEnd(
            finish_reason=codec.finish_reason_to_proto(item.done.finish_reason),
            usage=codec.usage_to_proto(item.done.usage),
            cost=codec.nanos_to_money(item.cost_nanos),
            routing=routing,
        )
        return pb.StreamResponse(end=end)
    raise TypeError(f"unexpected stream item {type(item).__name__}")


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, request_id: str) -> NoReturn:
    """Abort the RPC with the rich status for `exc`. Never returns."""
    if not isinstance(exc, RouterError):
        log.exception("unexpected error handling request %s", request_id)
    error = to_rpc_error(exc, request_id)
    status = rpc_status.to_status(error.status)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: context.abort raises")
