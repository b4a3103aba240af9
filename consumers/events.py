"""The fields of `router.v1.Event` that the aggregators read, as plain frozen dataclasses.

Aggregators take these rather than the protobuf message for two reasons: they stay pure code that
tests build from literal tables, and decode.py can fill them straight from the proto3 JSON dict
(~10 us per event) instead of through `json_format` (150-300 us per event here, which alone
would cap a consumer at a few thousand events per second).

Enum values are short lowercase names without the proto prefix: `ATTEMPT_OUTCOME_SUCCESS` is
"success", `ERROR_CLASS_RATE_LIMITED` is "rate_limited", `TASK_TYPE_CODE` is "code"; the zero
values are "unspecified".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Envelope:
    """Fields every event carries."""

    event_id: str
    event_time_s: float  # unix seconds, UTC
    request_id: str
    api_key_id: str = ""
    team: str = ""
    customer: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    user: str = ""  # the key's end user; absent in events written before the field existed
    router_instance: str = ""  # the router that produced the event ("<hostname>-<pid>")


@dataclass(frozen=True, slots=True)
class Decision:
    kind: ClassVar[str] = "decision"

    task_type: str  # "chat", "code", ... or "unspecified"
    chosen: str = ""  # "provider/model"; empty when nothing was eligible


@dataclass(frozen=True, slots=True)
class Attempt:
    kind: ClassVar[str] = "attempt"

    provider: str
    model: str
    outcome: str  # "success" | "error" | "cancelled" | "unspecified"
    error_class: str = "unspecified"  # "rate_limited", "timeout", ... with outcome error/cancelled
    latency_ms: int = 0
    ttft_ms: int | None = None  # unset when no token arrived or the call was not streamed
    # A hedge loser that answered after its request was answered: what the unused answer cost.
    unused_input_tokens: int = 0
    unused_output_tokens: int = 0
    unused_cached_input_tokens: int = 0
    unused_cost_nanos_usd: int = 0
    # Set when this attempt's failure opened the deployment's breaker on its router: the cooldown.
    breaker_cooldown_ms: int | None = None
    # The timeout fired late because the router's own loop was stalled: no evidence either way.
    router_stalled: bool = False

    @property
    def billed_unused(self) -> bool:
        return (
            self.unused_cost_nanos_usd != 0 or self.unused_input_tokens != 0 or self.unused_output_tokens != 0
        )


@dataclass(frozen=True, slots=True)
class Completion:
    kind: ClassVar[str] = "completion"

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_nanos_usd: int = 0
    cost_saved_nanos_usd: int = 0
    cache_hit: bool = False


@dataclass(frozen=True, slots=True)
class Feedback:
    kind: ClassVar[str] = "feedback"

    score: float  # [0, 1]
    # The scorer's key has the `evaluate` scope. For feedback the envelope's key, team and
    # customer are the scorer's, not those of the request it scores.
    evaluator: bool = False


@dataclass(frozen=True, slots=True)
class Governance:
    """A budget or rate limit's admission decision (events.proto GovernanceEvent): the settled
    truth of spend stays the completions; these say why a caller was refused or downgraded."""

    kind: ClassVar[str] = "governance"

    decision: str  # allow | downgrade | deny | allow_uncounted | deny_store_unavailable
    level: str = ""
    entity: str = ""
    metric: str = ""
    limit: int = 0
    current: int = 0
    asked: int = 0
    reserved_cost_nanos_usd: int = 0
    reserved_tokens: int = 0
    downgrade_policy: str = ""
    hedge: bool = False


Body = Decision | Attempt | Completion | Feedback | Governance


@dataclass(frozen=True, slots=True)
class Event:
    envelope: Envelope
    body: Body

    @property
    def kind(self) -> str:
        return self.body.kind


# The kinds the consumers model; "error" events are not read by any aggregator yet.
MODELLED_KINDS = frozenset(body.kind for body in (Decision, Attempt, Completion, Feedback, Governance))
