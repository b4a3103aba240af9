"""Prometheus metrics of the router (names, units, buckets and label sets in one place).

Labels are bounded: provider and model come from the config catalog, method from the proto,
code from grpc.StatusCode, error_class from the closed ErrorClass set. Tenant, user and request ids
never become labels; they go to Kafka events.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# OpenTelemetry GenAI duration buckets (seconds): 0.01 doubling to 81.92. The library default
# stops at 10 s, too short for LLM calls.
GENAI_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
# Router-side RPC latency also needs sub-10ms resolution for Route.
RPC_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, *GENAI_DURATION_BUCKETS)

RPC_REQUESTS = Counter(
    "llmrouter_rpc_requests", "gRPC calls handled, by method and final status code.", ["method", "code"]
)
RPC_DURATION = Histogram(
    "llmrouter_rpc_duration_seconds",
    "gRPC call duration as seen by the server.",
    ["method"],
    buckets=RPC_DURATION_BUCKETS,
)
RPC_IN_FLIGHT = Gauge("llmrouter_rpc_in_flight", "gRPC calls being handled now.", ["method"])

# The OpenAI-compatible HTTP door's calls (openai_door/metrics.py), the rpc families' twins: route
# is the door's route name (chat_completions, models, model, unknown), status the HTTP status sent
# (499: the caller went away first), code the router's final status as a gRPC call would report it
# (so a stream that failed after its 200 and first chunk counts as 200 with its error's code).
HTTP_REQUESTS = Counter(
    "llmrouter_http_requests",
    "OpenAI-compatible HTTP calls handled, by route, HTTP status and final router status code.",
    ["route", "status", "code"],
)
HTTP_DURATION = Histogram(
    "llmrouter_http_duration_seconds",
    "OpenAI-compatible HTTP call duration as seen by the server (a stream: until its last byte).",
    ["route"],
    buckets=RPC_DURATION_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "llmrouter_http_in_flight", "OpenAI-compatible HTTP calls being handled now.", ["route"]
)

UPSTREAM_ATTEMPTS = Counter(
    "llmrouter_upstream_attempts",
    "Upstream attempts by outcome (success, error, cancelled) and error class ('' on success).",
    ["provider", "model", "outcome", "error_class"],
)
UPSTREAM_DURATION = Histogram(
    "llmrouter_upstream_request_duration_seconds",
    "Duration of one upstream attempt.",
    ["provider", "model", "outcome"],
    buckets=GENAI_DURATION_BUCKETS,
)
UPSTREAM_TTFT = Histogram(
    "llmrouter_upstream_time_to_first_chunk_seconds",
    "Streaming: time from sending the upstream request to its first chunk.",
    ["provider", "model"],
    buckets=GENAI_DURATION_BUCKETS,
)
TOKENS = Counter(
    "llmrouter_tokens",
    "Tokens of successful attempts; direction is input, output or cached_input (part of input).",
    ["provider", "model", "direction"],
)
COST = Counter(
    "llmrouter_cost_nano_usd",
    "Exact cost of successful attempts in nano-USD (divide by 1e9 for USD), unused hedge answers included.",
    ["provider", "model"],
)
LOOP_STALLED_TIMEOUTS = Counter(
    "llmrouter_upstream_loop_stalled_timeouts",
    "Attempt timeouts that fired late because the router's event loop was blocked (GC pause, CPU"
    " starvation): timeouts for the caller, not counted against the deployment.",
    ["provider"],
)
IMPLAUSIBLE_USAGE = Counter(
    "llmrouter_upstream_implausible_usage",
    "Upstream answers refused for implausible token usage (a bad_response attempt, never billed), by"
    " reason: not_integer, negative, cached_above_input, input_above_bound, output_above_bound.",
    ["provider", "reason"],
)
DECISIONS = Counter(
    "llmrouter_routing_decisions", "Routing decisions by policy and strategy.", ["policy", "strategy"]
)
LEARNING_DRIFT_ALARMS = Counter(
    "llmrouter_learning_drift_alarms",
    "Significant quality drops the learner's detector caught, per deployment and request task (the"
    " arm then keeps only its scores since the drop, so its estimate falls at once).",
    ["provider", "model", "task"],
)
REQUEST_ERRORS = Counter(
    "llmrouter_request_errors",
    "Requests that failed after routing started, by router error reason.",
    ["reason"],
)
