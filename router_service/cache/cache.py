"""The facade the request path calls: look up before routing upstream, store after a clean answer.

    found = await cache.lookup(ctx.identity, request, policy, directives)
    if isinstance(found, Hit):                      # answer now: zero cost, no attempts
        return entry.as_completion(found.entry, catalog[found.entry.deployment], decision)
    completion, shared = await cache.coalesce(found, lambda: run_upstream(...))
    if not shared:
        await cache.store(found, entry.from_completion(completion, clock.time()))

`Stream` does the same with `entry.replay` on a hit and an `entry.StreamCapture` fed every item it
yields, stored only when `capture.answer(...)` is not None (the stream finished cleanly). An entry
whose deployment is no longer in the catalog is best treated as a miss.

A cache failure never fails a call: a store error, a timeout or an unreadable value is counted
(`llmrouter_cache_errors_total{operation}`), logged without the key's text (a short prefix of the
hash) at most every `_LOG_EVERY_S` per operation, and answered as a miss (or a skipped store).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from router_service.cache import metrics
from router_service.cache.coalesce import Coalescer, Lead
from router_service.cache.codec import CorruptEntryError, decode, encode
from router_service.cache.entry import CachedAnswer
from router_service.cache.key import ScopeBy, TenantScope, cache_key, tenant_scope
from router_service.cache.rules import NO_DIRECTIVES, CacheRules, Directives, Skip, access, fresh
from router_service.cache.store import CacheStore, CacheUnavailableError, MemoryCacheStore
from router_service.clock import Clock
from router_service.domain import ChatRequest
from router_service.identity.model import Identity

if TYPE_CHECKING:
    from router_service.cache.schema import CacheConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

_LOG_EVERY_S = 10.0
_INFLATE_FACTOR = 64  # an entry inflates to at most this many times its size cap (JSON compresses ~10x)
_DECODED_MAX_BYTES = 8 << 20  # decoded entries kept for hot keys (`_remember`)
_SCOPES_MAX = 4096  # identities whose normalized scope is kept (`_scope`)
# The `cache:` fields a reload cannot change in a running cache: they name the store and its
# client, made at start. The others apply at once (`ResponseCache.reconfigure`).
RESTART_FIELDS = ("store", "redis_url", "redis_prefix", "store_timeout_s")


@dataclass(frozen=True, slots=True)
class CacheSettings:
    ttl_s: float = 3600.0
    scope_by: ScopeBy = ScopeBy.TEAM
    # Each store call is bounded by this (None: no bound, for the in-process store).
    timeout_s: float | None = None
    coalesce: bool = True


@dataclass(frozen=True, slots=True)
class Hit:
    key: str
    entry: CachedAnswer
    age_s: float  # how old the answer is; say so in the response


@dataclass(frozen=True, slots=True)
class Miss:
    key: str  # "" when the request is not cacheable: nothing to store, nothing to coalesce on
    write: bool  # store the fresh answer under `key`
    skip: Skip | None = None


_BYPASS = Miss("", False)


def settings_of(config: CacheConfig) -> CacheSettings:
    """The facade's settings from the `cache:` section (a timeout bounds only a remote store)."""
    timeout_s = config.store_timeout_s if config.store == "redis" else None
    return CacheSettings(
        ttl_s=config.ttl_s, scope_by=config.scope_by, timeout_s=timeout_s, coalesce=config.coalesce
    )


class ResponseCache:
    def __init__(self, store: CacheStore, rules: CacheRules, settings: CacheSettings, clock: Clock) -> None:
        self._store = store
        self._rules = rules
        self._settings = settings
        self._clock = clock
        self._max_inflated = store.max_value_bytes * _INFLATE_FACTOR
        self._coalescer: Coalescer[Any] = Coalescer()
        self._streams: Coalescer[CachedAnswer] = Coalescer()  # Stream calls, keyed by cache key
        self._logged_at: dict[str, float] = {}
        # key -> (stored bytes, their entry, bytes held): see `_remember`.
        self._decoded: OrderedDict[str, tuple[bytes, CachedAnswer, int]] = OrderedDict()
        self._decoded_bytes = 0
        self._scopes: dict[int, tuple[Identity, TenantScope]] = {}
        self._off = False  # `enabled: false` on a reload: every request goes around the cache

    @property
    def settings(self) -> CacheSettings:
        return self._settings

    def reconfigure(self, config: CacheConfig, running: CacheConfig) -> list[str]:
        """Apply a reloaded `cache:` section (SIGHUP) in place, keeping every entry: what may be
        cached (policies, keys, the nondeterministic and tools switches), the TTL, the scope,
        coalescing, the entry size cap, the in-process store's memory bound (shrinking it evicts
        the least recently used), and `enabled` (false: requests go around the cache, its
        entries kept for a reload that turns it on again). `running` is the section the cache
        runs with now. A TTL applies to reads at once (an entry older than it is a miss) and to
        entries stored from now on; a new scope keys new entries (the old ones stop matching).
        Returns the `RESTART_FIELDS` that changed: logged, and kept as they were."""
        kept = [name for name in RESTART_FIELDS if getattr(config, name) != getattr(running, name)]
        if kept:
            log.warning("cache reload: %s changed, which needs a restart; kept as running", ", ".join(kept))
            config = config.model_copy(update={name: getattr(running, name) for name in kept})
        settings = settings_of(config)
        if settings.scope_by is not self._settings.scope_by:
            self._scopes.clear()
        self._rules, self._settings, self._off = config.to_rules(), settings, not config.enabled
        self._store.max_value_bytes = config.max_entry_bytes
        self._max_inflated = config.max_entry_bytes * _INFLATE_FACTOR
        if isinstance(self._store, MemoryCacheStore):
            self._store.resize(config.memory_max_bytes)
            self._gauge()
        return kept

    async def lookup(
        self, identity: Identity, request: ChatRequest, policy: str, directives: Directives = NO_DIRECTIVES
    ) -> Hit | Miss:
        if self._off:
            return _BYPASS
        try:
            allowed = access(self._rules, identity, request, policy, directives)
            if allowed.skip is not None:
                metrics.SKIPS.labels(allowed.skip.value).inc()
                return Miss("", False, allowed.skip)
            key = cache_key(self._scope(identity), request, policy)
        except Exception as exc:  # a request the key cannot normalize goes around the cache
            self._failed("key", "", exc)
            return _BYPASS
        if not allowed.read:
            return Miss(key, allowed.write)
        metrics.LOOKUPS.inc()
        found = await self._get(key)
        if found is None:
            return Miss(key, allowed.write)
        age = found.age_s(self._clock.time())
        if not fresh(age, self._settings.ttl_s, directives):
            return Miss(key, allowed.write)
        metrics.HITS.inc()
        return Hit(key, found, age)  # a hit makes no Miss: each object is a hit's cost

    def _scope(self, identity: Identity) -> TenantScope:
        """The identity's scope, normalized once per identity object (keystores hand out the
        same object per key), not per request: its access rules are sorted sets."""
        known = self._scopes.get(id(identity))
        if known is not None and known[0] is identity:
            return known[1]
        if len(self._scopes) >= _SCOPES_MAX:
            self._scopes.clear()
        scope = tenant_scope(identity, self._settings.scope_by)
        self._scopes[id(identity)] = (identity, scope)  # holds it: its id is not reused meanwhile
        return scope

    async def store(self, miss: Miss, answer: CachedAnswer) -> bool:
        """Write a clean answer under the miss's key; True when it was stored."""
        if not miss.write or not miss.key:
            return False
        try:
            value = encode(miss.key, answer)
        except Exception as exc:
            self._failed("encode", miss.key, exc)
            return False
        try:
            async with self._clock.timeout(self._settings.timeout_s):
                stored = await self._store.set(miss.key, value, self._settings.ttl_s)
        except (CacheUnavailableError, TimeoutError) as exc:
            self._failed("set", miss.key, exc)
            return False
        self._gauge()
        if not stored:
            metrics.OVERSIZE.inc()
            return False
        metrics.STORES.inc()
        metrics.STORED_BYTES.inc(len(value))
        return True

    async def coalesce(
        self, miss: Miss, producer: Callable[[], Awaitable[T]], kind: str = ""
    ) -> tuple[T, bool]:
        """Run `producer`, unless an identical call (same key and `kind`: "complete", "stream", so
        the two never get each other's result types) is already running: then its result.
        (result, shared): a shared result was another call's, already stored by it."""
        if not miss.key or not self._settings.coalesce:
            return await producer(), False
        result, shared = await self._coalescer.run(f"{kind}:{miss.key}", producer)
        if shared:
            metrics.COALESCED.inc()
        return cast(T, result), shared

    async def follow_stream(self, miss: Miss) -> CachedAnswer | None:
        """The answer of an identical Stream of this tenant still running (when coalescing),
        once it finished cleanly; None: none running, or it failed (make your own call)."""
        if not miss.key or not self._settings.coalesce:
            return None
        leader = self._streams.leader_of(miss.key)
        if leader is None:
            return None
        answer = await self._streams.follow(leader)
        if answer is not None:
            metrics.COALESCED.inc()
        return answer

    def lead_stream(self, miss: Miss) -> Lead[CachedAnswer] | None:
        """Make this Stream the one identical Streams of the tenant arriving meanwhile follow:
        `succeed` with its captured answer when it finished cleanly, else `fail`."""
        if not miss.key or not self._settings.coalesce or self._streams.leader_of(miss.key) is not None:
            return None
        return self._streams.lead(miss.key)

    async def close(self) -> None:
        await self._store.close()
        self._gauge()

    async def _get(self, key: str) -> CachedAnswer | None:
        timeout_s = self._settings.timeout_s
        try:
            if timeout_s is None:  # the in-process store: no timer to arm (a hit's cost counts)
                value = await self._store.get(key)
            else:
                async with self._clock.timeout(timeout_s):
                    value = await self._store.get(key)
        except (CacheUnavailableError, TimeoutError) as exc:
            self._failed("get", key, exc)
            return None
        if value is None:
            return None
        memo = self._decoded.get(key)
        if memo is not None and memo[0] == value:  # the same bytes decode to the same entry
            return memo[1]
        try:
            entry = decode(key, value, self._max_inflated)
        except CorruptEntryError as exc:
            self._failed("decode", key, exc)
            return None
        self._remember(key, value, entry)
        return entry

    def _remember(self, key: str, value: bytes, entry: CachedAnswer) -> None:
        """Keep the decoded entry of a hot key: inflating and parsing it again is most of a hit's
        cost in the cache. Bounded by the bytes it holds; the oldest entries go first."""
        size = len(value) + len(entry.content) + len(key)
        if size > _DECODED_MAX_BYTES // 16:
            return
        old = self._decoded.pop(key, None)
        if old is not None:
            self._decoded_bytes -= old[2]
        self._decoded[key] = (value, entry, size)
        self._decoded_bytes += size
        while self._decoded_bytes > _DECODED_MAX_BYTES:
            _, (_, _, evicted) = self._decoded.popitem(last=False)
            self._decoded_bytes -= evicted

    def _gauge(self) -> None:
        if isinstance(self._store, MemoryCacheStore):
            metrics.MEMORY_BYTES.set(self._store.size_bytes)

    def _failed(self, operation: str, key: str, exc: BaseException) -> None:
        metrics.ERRORS.labels(operation).inc()
        now = self._clock.monotonic()
        last = self._logged_at.get(operation)
        if last is not None and now - last < _LOG_EVERY_S:
            return
        self._logged_at[operation] = now
        # The exception's type and our own message only; the key as a short hash prefix.
        log.warning("response cache %s failed (key %s…): %s", operation, key[:12], _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CacheUnavailableError | CorruptEntryError):
        return str(exc)
    return type(exc).__name__
