"""The internal request/response model every layer speaks.

Frozen, slotted dataclasses and plain enums from the standard library only: the gRPC codec
translates protobuf to these at the edge, provider adapters translate these to each wire format,
and routing policy reads them. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Role(enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class FinishReason(enum.Enum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    UNKNOWN = "unknown"


class TaskType(enum.Enum):
    CHAT = "chat"
    RETRIEVAL = "retrieval"
    CREATIVE = "creative"
    REASONING = "reasoning"
    EXTRACTION = "extraction"
    CODE = "code"


class DataSensitivity(enum.Enum):
    PUBLIC = "public"
    INTERNAL = "internal"
    RESTRICTED = "restricted"


class ToolChoiceMode(enum.Enum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    FUNCTION = "function"


class ResponseFormatType(enum.Enum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    # JSON Schema of the arguments object, as plain JSON-compatible data.
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode
    function_name: str = ""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: ResponseFormatType
    json_schema: Mapping[str, Any] | None = None
    schema_name: str = ""


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ModelSelection:
    """Which model the caller asked for. Neither `model` nor `alias`: automatic routing."""

    model: str = ""
    alias: str = ""
    disable_fallback: bool = False


@dataclass(frozen=True, slots=True)
class RoutingHints:
    policy: str = ""
    task_type: TaskType | None = None
    max_cost_nanos: int | None = None
    latency_target_s: float | None = None
    min_quality: float | None = None
    data_sensitivity: DataSensitivity = DataSensitivity.INTERNAL
    allowed_providers: frozenset[str] = frozenset()
    denied_providers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A caller's chat request after validation: what to answer and how it may be routed."""

    messages: tuple[Message, ...]
    selection: ModelSelection = ModelSelection()
    params: GenerationParams = GenerationParams()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    hints: RoutingHints = RoutingHints()
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # Part of input_tokens served from the provider's prompt cache.
    cached_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One whole answer from one upstream call."""

    message: Message
    finish_reason: FinishReason
    usage: Usage
    upstream_model: str = ""
    response_id: str = ""


# Streaming: adapters yield these in order; exactly one StreamDone ends a clean stream.


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments_fragment: str = ""


@dataclass(frozen=True, slots=True)
class StreamDone:
    finish_reason: FinishReason
    usage: Usage
    upstream_model: str = ""


StreamEvent = TextDelta | ToolCallDelta | StreamDone


# Routing vocabulary shared by policy, engine, telemetry and the API codec.


class AttemptOutcome(enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One upstream attempt, as reported in responses and events."""

    provider: str
    model: str
    outcome: AttemptOutcome
    latency_s: float
    error_class: str = ""  # ErrorClass value when outcome is ERROR/CANCELLED
    http_status: int = 0
    time_to_first_token_s: float | None = None
    started_at_unix_s: float = 0.0
    retry_after_s: float | None = None
    hedged: bool = False  # started as a race against a slow first choice
    # A hedge loser that finished after its request was answered: what its unused answer cost.
    unused_usage: Usage | None = None
    unused_cost_nanos: int = 0
    # Set when this failure opened the deployment's circuit breaker here: its cooldown, which the
    # event carries to the fleet (AttemptEvent.breaker_cooldown_ms).
    breaker_cooldown_s: float | None = None
    # A timeout that fired late because this router's loop was blocked (resilience/loop_stall.py):
    # the caller's timeout, but no evidence against the upstream (AttemptEvent.router_stalled).
    router_stalled: bool = False


# Not frozen, by measurement: a frozen dataclass's __init__ sets each field through
# object.__setattr__, which made building one ~5x slower (11 fields), and the planner builds one
# per candidate per request (50 in a large catalog). Treat it as immutable all the same; it stays
# hashable (by value) so a RouteDecision is.
@dataclass(slots=True, unsafe_hash=True)
class CandidateView:
    """One deployment as routing saw it: eligible or not, and why."""

    provider: str
    model: str
    eligible: bool
    exclusion_reason: str = ""
    score: float = 0.0
    estimated_cost_nanos: int = 0
    # The quality estimate for the request's task (configured prior, moved by fleet feedback),
    # and whether it is known; quality floors exclude only on known estimates.
    quality: float = 0.0
    quality_known: bool = False
    # With a learning quality view or strategy (`routing.learning`): the uncertainty (sd) of
    # `quality`, the (decayed) number of feedback scores it rests on, and whether this candidate
    # is the request's exploration probe rather than the best known deal.
    quality_sd: float = 0.0
    quality_samples: float = 0.0
    exploration: bool = False

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class BudgetDowngrade:
    """A soft budget threshold moved the request to a cheaper policy (router_service/limits/)."""

    from_policy: str  # the policy the request would have been routed with
    entity: str  # the limited entity whose threshold was reached: "team:search", "global"
    reason: str  # in words, e.g. "team:search cost at >= 80% of its limit per month (UTC)"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The auditable result of routing: the ordered chain and every candidate considered."""

    policy: str
    strategy: str
    task_type: TaskType
    chain: tuple[str, ...]  # deployment keys "provider/model", first is the choice
    candidates: tuple[CandidateView, ...]
    downgrade: BudgetDowngrade | None = None  # set when `policy` is a budget's downgrade policy

    @property
    def chosen(self) -> str:
        return self.chain[0] if self.chain else ""
