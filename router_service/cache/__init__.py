"""The response cache, scoped to the tenant by construction (README "Caching", issue 15).

- `key`: the cache key, a SHA-256 of the tenant scope and the normalized request, pure.
- `rules`: what may be cached (opt-in, deterministic-enough calls) and the caller's directives
  (no-cache, no-store, max-age), pure.
- `entry`: the cached final answer, and what the engine makes of it on a hit (a `Completion`, or
  the stream items of a replay) with zero cost, pure. `codec`: an entry as compressed bytes.
- `store`: the byte store interface and its in-process LRU (bounded by bytes, TTL);
  `redis_store`: the same semantics in Redis, shared by replicas (SET PX).
- `coalesce`: concurrent identical misses share one upstream call.
- `cache`: the facade the request path calls (`lookup`, `store`, `coalesce`); it never lets a
  cache failure fail a call; `reconfigure` applies a reloaded section (SIGHUP), entries kept.
- `schema`, `factory`: the `cache:` config section and what it builds.
"""
