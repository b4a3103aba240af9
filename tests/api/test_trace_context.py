"""trace_ids(): the caller's W3C traceparent from gRPC metadata, validated by OpenTelemetry."""

from __future__ import annotations

import pytest

from router_service.api.trace_context import NO_TRACE, trace_ids

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_a_valid_traceparent_gives_its_trace_and_span_ids() -> None:
    metadata = [("user-agent", "grpc-go/1.70"), ("traceparent", TRACEPARENT), ("tracestate", "vendor=x")]
    assert trace_ids(metadata) == (TRACE_ID, SPAN_ID)


def test_an_unsampled_trace_still_correlates() -> None:
    assert trace_ids([("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-00")]) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        [],
        [("authorization", "Bearer x")],
        [("traceparent", "garbage")],
        [("traceparent", f"00-{'0' * 32}-{SPAN_ID}-01")],  # all-zero trace id: invalid
        [("traceparent", f"00-{TRACE_ID}-{'0' * 16}-01")],  # all-zero span id: invalid
        [("traceparent", f"ff-{TRACE_ID}-{SPAN_ID}-01")],  # version ff is forbidden
        [("traceparent-bin", b"\x00\x01")],
    ],
    ids=["none", "empty", "other-headers", "garbage", "zero-trace", "zero-span", "version-ff", "binary"],
)
def test_no_or_an_invalid_traceparent_is_no_trace(metadata: list[tuple[str, str | bytes]] | None) -> None:
    assert trace_ids(metadata) == NO_TRACE
