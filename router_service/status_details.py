"""google.rpc detail messages built the same way wherever an error carries them: the API's status
table (api/status.py) and the limits' details (limits/rpc_details.py) both say "retry after this
long" with `retry_info`."""

from __future__ import annotations

from google.protobuf import duration_pb2
from google.rpc import error_details_pb2


def retry_info(delay_s: float) -> error_details_pb2.RetryInfo:
    """RetryInfo of `delay_s`, rounded to the nanosecond (0.3 s is 300_000_000 nanos, not the
    299_999_999 that truncating a float's fraction gives)."""
    seconds = int(delay_s)
    nanos = round((delay_s - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, 0
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos))
