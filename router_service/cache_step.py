"""The response cache's part of a request, as the engine runs it: look up before routing, answer a
hit, share or store a miss's fresh answer. `NO_CACHE` is the same step without a cache, so the
engine takes one path either way.

The lookup comes first, keyed on the policy the request names (or the router's default), so that
a hit pays neither the task classifier nor the ranking: `cache.answerable` checks instead that
routing could pick the entry's deployment at all. A hit sends nothing upstream and costs nothing.
A miss is routed as without a cache (the engine decides whether its answer may be stored: not
when the limits downgraded the policy it was keyed on).

Identical concurrent misses of a tenant share one upstream call: a `Complete` through
`ResponseCache.coalesce`; a `Stream` follows the one already running and replays its answer, or
leads the ones arriving after it. Only a clean answer is stored or shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from router_service.cache import entry as cache_entry
from router_service.cache.answerable import answering_deployment, hit_decision
from router_service.cache.cache import Hit, Miss, ResponseCache
from router_service.cache.coalesce import Lead
from router_service.cache.entry import CachedAnswer, ReplayItem
from router_service.call import CacheHit, CallContext, Completion, StreamFinish
from router_service.catalog import Catalog, Deployment
from router_service.clock import Clock
from router_service.domain import ChatRequest, RouteDecision, TaskType
from router_service.settings import RuntimeConfig

Items = AsyncGenerator[ReplayItem, None]  # the engine's StreamItem
_DECISIONS_MAX = 1024  # hit decisions kept (`CacheStep._decision`): policies x tasks x deployments


@dataclass(frozen=True, slots=True)
class CachedHit:
    """A hit routing could answer with now: the entry, its deployment in the current catalog, and
    the decision the answer reports."""

    hit: Hit
    deployment: Deployment
    decision: RouteDecision


# What the lookup found: answer now, store the fresh answer under this miss, or no cache part
# (no cache, or a policy that does not exist: routing refuses the request).
Found = CachedHit | Miss | None


class CacheStep:
    def __init__(self, cache: ResponseCache, clock: Clock) -> None:
        self._cache = cache
        self._clock = clock  # the engine's: an entry's created_at is a time on it
        self._decisions: dict[tuple[str, str, TaskType, str], tuple[Deployment, RouteDecision]] = {}

    async def look_up(self, ctx: CallContext, request: ChatRequest, config: RuntimeConfig) -> Found:
        """The cache's answer for this request, before routing it (never an error: the cache
        counts its own failures as misses), with the decision the hit reports. A hit whose
        deployment routing could not pick now (it left the catalog or the policy, or this key,
        these hints or this sensitivity rule it out) is a miss."""
        name = request.hints.policy or config.routing.default_policy  # what Router.route picks
        policy = config.policies.get(name)
        if policy is None:
            return None
        directives = ctx.cache
        found = await self._cache.lookup(ctx.identity, request, name, directives)
        if isinstance(found, Miss):
            return found
        answering = answering_deployment(
            config.catalog, policy, request, ctx.identity, found.entry.deployment
        )
        if answering is None:
            return Miss(found.key, write=not directives.no_store)
        deployment, strategy = answering
        task = request.hints.task_type or found.entry.task_type
        if task is None:  # an entry older than its task field: classify, as routing would
            task = config.routing_env.classifier.classify(request)
        return CachedHit(found, deployment, self._decision(name, strategy, task, deployment))

    def _decision(self, policy: str, strategy: str, task: TaskType, deployment: Deployment) -> RouteDecision:
        """The decision a hit reports, made once per (policy, strategy, task, deployment) rather
        than once per hit (frozen: every hit may share it). A reload's catalog has new deployment
        objects, so one from before it is made again."""
        memo_key = (policy, strategy, task, deployment.key)
        known = self._decisions.get(memo_key)
        if known is not None and known[0] is deployment:
            return known[1]
        if len(self._decisions) >= _DECISIONS_MAX:
            self._decisions.clear()
        decision = hit_decision(policy, strategy, task, deployment)
        self._decisions[memo_key] = (deployment, decision)
        return decision

    async def status(self, ctx: CallContext, request: ChatRequest, config: RuntimeConfig) -> CacheHit | None:
        """For `Route`: whether a Complete or Stream of this caller would be answered from the
        cache now, and by how old an answer (the entry is only read)."""
        found = await self.look_up(ctx, request, config)
        if not isinstance(found, CachedHit):
            return None
        hit = found.hit
        return CacheHit(hit.age_s, cache_entry.saved_cost_nanos(hit.entry, found.deployment))

    async def complete(
        self, decision: RouteDecision, found: Found, dispatch: Callable[[], Awaitable[Completion]]
    ) -> Completion:
        """A unary call's answer: the hit's, a concurrent identical call's, or `dispatch`'s (then
        stored under the miss)."""
        if isinstance(found, CachedHit):
            hit = found.hit
            return cache_entry.as_completion(hit.entry, found.deployment, decision, hit.age_s)
        if found is None:
            return await dispatch()
        # Identical concurrent misses of this tenant share one upstream call (the key is theirs).
        completion, shared = await self._cache.coalesce(found, dispatch, "complete")
        if shared:
            return _coalesced(completion, decision)
        await self._cache.store(found, cache_entry.from_completion(completion, self._clock.time()))
        return completion

    def stream(
        self, decision: RouteDecision, found: Found, catalog: Catalog, fresh: Callable[[], Items]
    ) -> Items:
        """A stream's items: the hit's replay, a concurrent identical Stream's, or `fresh()`'s
        (stored under the miss once it finished cleanly)."""
        if isinstance(found, CachedHit):
            hit = found.hit
            return _replay(cache_entry.replay(hit.entry, found.deployment, decision, hit.age_s))
        if found is None:
            return fresh()
        return self._stream_miss(decision, found, catalog, fresh)

    async def _stream_miss(
        self, decision: RouteDecision, miss: Miss, catalog: Catalog, fresh: Callable[[], Items]
    ) -> Items:
        # An identical Stream of this tenant already running: wait for its answer and replay it
        # (cost 0, a hit of age 0); if it fails, make our own call, as without coalescing.
        shared = await self._cache.follow_stream(miss)
        by = None if shared is None else catalog.by_key.get(shared.deployment)
        if shared is not None and by is not None:
            for replayed in cache_entry.replay(shared, by, decision):
                yield replayed
            return
        lead = self._cache.lead_stream(miss)
        # Stored only once the stream finished cleanly: a failed or interrupted one has no answer.
        capture = cache_entry.StreamCapture() if miss.write or lead is not None else None
        try:
            async with contextlib.aclosing(fresh()) as items:
                async for item in items:
                    if capture is not None:
                        capture.add(item)
                        if isinstance(item, StreamFinish):  # before it is yielded: the
                            await self._finished(miss, capture, lead)  # consumer may stop then
                    yield item
        finally:
            if lead is not None:
                lead.fail()  # followers make their own calls (nothing once it succeeded)

    async def _finished(
        self, miss: Miss, capture: cache_entry.StreamCapture, lead: Lead[CachedAnswer] | None
    ) -> None:
        answer = capture.answer(self._clock.time())
        if answer is None:
            return
        if lead is not None:
            lead.succeed(answer)
        if miss.write:
            await self._cache.store(miss, answer)


class NoCache:
    """The cache step of a router without a response cache: every request goes upstream."""

    __slots__ = ()

    async def look_up(self, ctx: CallContext, request: ChatRequest, config: RuntimeConfig) -> Found:
        return None

    async def status(self, ctx: CallContext, request: ChatRequest, config: RuntimeConfig) -> CacheHit | None:
        return None

    async def complete(
        self, decision: RouteDecision, found: Found, dispatch: Callable[[], Awaitable[Completion]]
    ) -> Completion:
        return await dispatch()

    def stream(
        self, decision: RouteDecision, found: Found, catalog: Catalog, fresh: Callable[[], Items]
    ) -> Items:
        return fresh()


Step = CacheStep | NoCache
NO_CACHE = NoCache()


def cache_step(cache: ResponseCache | None, clock: Clock) -> Step:
    return NO_CACHE if cache is None else CacheStep(cache, clock)


async def _replay(items: list[ReplayItem]) -> Items:
    for item in items:
        yield item


def _coalesced(leader: Completion, decision: RouteDecision) -> Completion:
    """A concurrent identical call's answer: this call sent nothing upstream, so it costs nothing
    and reports a hit on a fresh answer (age 0) that saved what the leader's call cost."""
    return Completion(leader.result, leader.deployment, decision, (), 0, CacheHit(0.0, leader.cost_nanos))
