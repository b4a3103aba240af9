"""Value conversions shared by the protobuf and JSON encoders of events (standard library only).

Both encoders must agree to the bit, so every unit and rounding decision lives here once:
milliseconds are rounded from float seconds, times are kept to the microsecond (a float of unix
seconds carries no more), money is split the way google.type.Money wants, and enums are named as
in router.proto.
"""

from __future__ import annotations

import datetime as dt
import functools
import math

from router_service import domain
from router_service.errors import ErrorClass

NANOS_PER_USD = 1_000_000_000


def millis(seconds: float) -> int:
    return round(seconds * 1000)


def split_time(unix_s: float) -> tuple[int, int]:
    """(seconds, nanos) of a unix time, rounded to the microsecond."""
    micros = round(unix_s * 1_000_000)
    seconds = math.floor(micros / 1_000_000)
    return seconds, (micros - seconds * 1_000_000) * 1000


def rfc3339(seconds: int, nanos: int) -> str:
    """UTC RFC 3339 text exactly as the proto3 JSON mapping prints a Timestamp (0, 3, 6 or 9 digits)."""
    text = _whole_seconds_text(seconds)
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def rfc3339_of(unix_s: float) -> str:
    """`rfc3339(*split_time(unix_s))` in one step (a third cheaper): the JSON encoder formats an
    event time or two for every event. Nanos here are whole microseconds, so 0, 3 or 6 digits."""
    seconds, micros = divmod(round(unix_s * 1_000_000), 1_000_000)
    text = _whole_seconds_text(seconds)
    if micros % 1000:
        return f"{text}.{micros:06d}Z"
    if micros:
        return f"{text}.{micros // 1000:03d}Z"
    return text + "Z"


@functools.lru_cache(maxsize=256)
def _whole_seconds_text(seconds: int) -> str:
    # Cached: events come in bursts within the same second, and strftime was the codec's top cost.
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def money_parts(nanos_usd: int) -> tuple[int, int]:
    """(units, nanos) of google.type.Money: both carry the amount's sign and |nanos| < 1e9."""
    sign = -1 if nanos_usd < 0 else 1
    units, nanos = divmod(abs(nanos_usd), NANOS_PER_USD)
    return sign * units, sign * nanos


# Enum names as declared in router.proto. Built at import, so a domain member without a proto
# twin fails every test at once rather than one event in production.
TASK_TYPE_NAMES = {member: f"TASK_TYPE_{member.name}" for member in domain.TaskType}
OUTCOME_NAMES = {member: f"ATTEMPT_OUTCOME_{member.name}" for member in domain.AttemptOutcome}
# AttemptRecord.error_class carries an ErrorClass *value* ("rate_limited"); "" means no error.
ERROR_CLASS_NAMES = {member.value: f"ERROR_CLASS_{member.name}" for member in ErrorClass}
FINISH_REASON_NAMES: dict[domain.FinishReason, str] = {
    member: f"FINISH_REASON_{member.name}"
    for member in domain.FinishReason
    if member is not domain.FinishReason.UNKNOWN
}
# events.GovernanceEvent.decision -> the events.proto GovernanceDecision enum name.
GOVERNANCE_DECISION_NAMES = {
    "allow": "GOVERNANCE_DECISION_ALLOW",
    "downgrade": "GOVERNANCE_DECISION_DOWNGRADE",
    "deny": "GOVERNANCE_DECISION_DENY",
    "allow_uncounted": "GOVERNANCE_DECISION_ALLOW_UNCOUNTED",
    "deny_store_unavailable": "GOVERNANCE_DECISION_DENY_STORE_UNAVAILABLE",
}
ERROR_CLASS_UNSPECIFIED = "ERROR_CLASS_UNSPECIFIED"
FINISH_REASON_UNSPECIFIED = "FINISH_REASON_UNSPECIFIED"


def error_class_name(value: str) -> str:
    return ERROR_CLASS_NAMES.get(value, ERROR_CLASS_UNSPECIFIED)


def finish_reason_name(reason: domain.FinishReason) -> str:
    return FINISH_REASON_NAMES.get(reason, FINISH_REASON_UNSPECIFIED)
