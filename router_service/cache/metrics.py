"""Prometheus metrics of the response cache. Labels are closed sets; tenants and keys never
become labels (the completion events carry them, with `cacheHit`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LOOKUPS = Counter(
    "llmrouter_cache_lookups",
    "Cache lookups of cacheable requests that allowed a read (hits + misses; errors count as misses).",
)
HITS = Counter("llmrouter_cache_hits", "Lookups answered from the cache.")
SKIPS = Counter(
    "llmrouter_cache_skips",
    "Requests that went around the cache, by reason (not_opted_in, nondeterministic, tools).",
    ["reason"],
)
STORES = Counter("llmrouter_cache_stores", "Answers written to the cache.")
STORED_BYTES = Counter("llmrouter_cache_stored_bytes", "Bytes of (compressed) entries written.")
OVERSIZE = Counter(
    "llmrouter_cache_oversize", "Answers not stored because their entry is over cache.max_entry_bytes."
)
ERRORS = Counter(
    "llmrouter_cache_errors",
    "Cache failures, each answered as a miss or a skipped store: by operation (get, set, decode).",
    ["operation"],
)
COALESCED = Counter(
    "llmrouter_cache_coalesced", "Calls answered by a concurrent identical call's upstream request."
)
MEMORY_BYTES = Gauge("llmrouter_cache_memory_bytes", "Bytes held by the in-process cache store.")
SAVED_COST = Counter(
    "llmrouter_cache_saved_cost_nano_usd",
    "What answers from the cache (hits and coalesced calls) would have cost upstream, in nano-USD.",
    ["provider", "model"],
)
