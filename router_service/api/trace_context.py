"""The caller's W3C trace context (`traceparent` gRPC metadata), for the events' envelope.

A caller that traces its requests sends `traceparent` (and maybe `tracestate`) as gRPC metadata,
as OpenTelemetry's gRPC instrumentation does. Its trace id and span id go on every event of the
request, so a data team can join the router's events to the caller's traces. Parsing and
validation are OpenTelemetry's W3C propagator's (an all-zero or malformed header is no context).
With `tracing` on, the router's own spans are children of the same context (telemetry/tracing.py);
the events still carry the caller's span id, which the caller knows.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

NO_TRACE = ("", "")
_PROPAGATOR = TraceContextTextMapPropagator()


def trace_ids(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, str]:
    """(trace id as 32 hex digits, the caller's span id as 16), or ("", "") when untraced."""
    # Binary (`-bin`) metadata values are bytes: never W3C headers.
    carrier = {k: v for k, v in metadata or () if k in _PROPAGATOR.fields and isinstance(v, str)}
    if "traceparent" not in carrier:
        return NO_TRACE  # the cheap common case
    span = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    if not span.is_valid:
        return NO_TRACE
    return trace.format_trace_id(span.trace_id), trace.format_span_id(span.span_id)
