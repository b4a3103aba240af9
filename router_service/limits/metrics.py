"""Prometheus metrics of the limits. Labels are bounded: level and metric are closed enums, decision
and policy closed sets. Entities (teams, keys) never become labels; decision events carry them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "llmrouter_limits_decisions",
    "Admission decisions by the level and metric that decided (allow: '', '') and the decision "
    "(allow, deny, downgrade, soft_exceeded, ceiling).",
    ["level", "metric", "decision"],
)
STORE_FAILURES = Counter(
    "llmrouter_limits_store_failures",
    "Limits store unreachable or too slow, by operation (reserve, settle) and what the failure "
    "policy did (fail_open: admitted uncounted, fail_closed: refused, lost: a settle not counted).",
    ["operation", "policy"],
)
LATE_SETTLES = Counter(
    "llmrouter_limits_late_settles",
    "Settles that arrived after their reservation expired (the hold was already given back; the "
    "spend still counts): each may push a limit past its amount by that request's cost.",
)

# Per limit of a named entity or the global level (bounded by the config, so entities may be
# labels here), refreshed by each router from the store every few seconds (governance.py).
# Every router exports the same shared counters: aggregate with max(), not sum().
_LIMIT_LABELS = ["level", "entity", "metric"]
LIMIT_AMOUNT = Gauge("llmrouter_limits_limit", "A limit's amount (nano-USD for cost).", _LIMIT_LABELS)
LIMIT_USED = Gauge(
    "llmrouter_limits_used", "What the limit's current window has used (settled).", _LIMIT_LABELS
)
LIMIT_RESERVED = Gauge(
    "llmrouter_limits_reserved", "What requests in flight hold against the limit.", _LIMIT_LABELS
)
STORE_REACHABLE = Gauge(
    "llmrouter_limits_store_reachable", "1 when the last read of the limits store answered, else 0."
)
