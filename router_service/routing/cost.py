"""Estimated tokens and cost of a request on a deployment, before it is sent.

Prompt tokens (no tokenizer on the request path; a documented rule instead):
    ceil(characters / chars_per_token)            for each message's text and tool-call arguments
  + message_overhead_tokens                        per message (role and framing tokens)
  + tool_overhead_tokens + ceil(len(name + description + schema) / chars_per_token)   per tool
Four characters per token is OpenAI's rule of thumb for English; code and non-Latin scripts use
more tokens per character, which is why a context-length error still falls back to a larger model.

Expected output tokens: the caller's max_output_tokens when given (their own bound, so a cost cap
holds as a ceiling), else a per-task default (a classification answer is short, a story is long).

Cost: the exact `Price` arithmetic on that token mix. Where a deployment declares an
`expected_cached_fraction` (providers that cache prompt prefixes automatically), that share of a
prompt of at least `cache_min_prompt_tokens` is priced at the cached-input rate; shorter prompts are
never cached (OpenAI's threshold is 1,024 tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from router_service.catalog import TOKENS_PER_PRICE_UNIT, Deployment
from router_service.domain import ChatRequest, TaskType
from router_service.routing.candidate import CandidateTable

DEFAULT_OUTPUT_TOKENS: Mapping[TaskType, int] = MappingProxyType(
    {
        TaskType.CHAT: 300,
        TaskType.RETRIEVAL: 300,
        TaskType.CREATIVE: 800,
        TaskType.REASONING: 1_000,
        TaskType.EXTRACTION: 200,
        TaskType.CODE: 600,
    }
)


@dataclass(frozen=True, slots=True)
class CostModelConfig:
    chars_per_token: float = 4.0
    message_overhead_tokens: int = 4
    tool_overhead_tokens: int = 16
    output_tokens_by_task: Mapping[TaskType, int] = field(default_factory=lambda: DEFAULT_OUTPUT_TOKENS)
    cache_min_prompt_tokens: int = 1_024

    def __post_init__(self) -> None:
        if self.chars_per_token <= 0:
            raise ValueError("chars_per_token must be > 0")
        missing = [t.value for t in TaskType if t not in self.output_tokens_by_task]
        if missing:
            raise ValueError(f"output_tokens_by_task has no entry for {', '.join(missing)}")


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    prompt_tokens: int
    output_tokens: int  # expected, for cost
    requested_max_output: int | None  # the caller's bound, for context-window checks


class CostModel:
    __slots__ = ("_cache_min", "_config", "_output_by_value")

    def __init__(self, config: CostModelConfig | None = None) -> None:
        self._config = config or CostModelConfig()
        self._output_by_value = {task.value: n for task, n in self._config.output_tokens_by_task.items()}
        self._cache_min = self._config.cache_min_prompt_tokens

    def estimate(self, request: ChatRequest, task: TaskType) -> TokenEstimate:
        requested = request.params.max_output_tokens
        # By value: an Enum member as a dict key hashes in Python code (see routing.candidate).
        expected = requested if requested is not None else self._output_by_value[task._value_]
        return TokenEstimate(self.prompt_tokens(request), expected, requested)

    def prompt_tokens(self, request: ChatRequest) -> int:
        config = self._config
        chars = 0
        for message in request.messages:
            chars += len(message.content)
            for call in message.tool_calls:
                chars += len(call.name) + len(call.arguments_json)
        tokens = len(request.messages) * config.message_overhead_tokens
        for tool in request.tools:
            chars += len(tool.name) + len(tool.description) + len(str(tool.parameters))
            tokens += config.tool_overhead_tokens
        return tokens + _ceil_div(chars, config.chars_per_token)

    def costs(self, table: CandidateTable, estimate: TokenEstimate) -> list[int]:
        """`cost_nanos` for every candidate of a table: the arithmetic once per price tier."""
        prompt, output = estimate.prompt_tokens, estimate.output_tokens
        if prompt < self._cache_min:  # the common case: nothing cached, two prices per tier
            scaled = [prompt * p_in + output * p_out for p_in, _, p_out, _ in table.price_tiers]
        else:
            # A long prompt: `c` of its tokens (the tier's cached fraction) at the cached price.
            # int(prompt * fraction) once per distinct fraction: a float product and int() per
            # tier cost more than the rest of its arithmetic.
            cached = [int(prompt * f) for f in table.distinct_cached_fractions]
            scaled = [
                (prompt - (c := cached[slot])) * p_in + c * p_cached + output * p_out
                for p_in, p_cached, p_out, slot in table.price_tiers
            ]
        unit = table.price_unit
        if unit != 1:  # prices are per `unit` tokens: round up to whole nano-USD
            scaled = [-(-cost // unit) for cost in scaled]
        return [scaled[tier] for tier in table.price_tier_of]

    def cost_nanos(self, deployment: Deployment, estimate: TokenEstimate) -> int:
        """Estimated cost in nano-USD, rounded up like `Price.cost_nanos`."""
        price = deployment.price
        prompt = estimate.prompt_tokens
        cached = 0
        if prompt >= self._cache_min and deployment.expected_cached_fraction > 0:
            cached = int(prompt * min(deployment.expected_cached_fraction, 1.0))
        scaled = (
            (prompt - cached) * price.input_nanos_per_mtok
            + cached * price.cached_input_nanos_per_mtok
            + estimate.output_tokens * price.output_nanos_per_mtok
        )
        return -(-scaled // TOKENS_PER_PRICE_UNIT)


def _ceil_div(chars: int, chars_per_token: float) -> int:
    return int(-(-chars // chars_per_token))
