"""Token usage from an upstream, checked before anything is billed.

Usage is what the bill is made of, and an upstream's answer is not trusted to be sane: negative counts
once surfaced as INTERNAL, 10^30 as UNKNOWN, and 10^15 tokens were billed as $3,000,000,000. Every
adapter reads its counts with `wire_count` and hands the result through `check_usage` (via
boundary.py), unary and stream alike, so the rules are one:

- each count is a JSON integer (not a bool, float or string) and not negative;
- cached input tokens are part of the input: cached <= input;
- input tokens <= INPUT_MARGIN x the model's context window, output tokens <= OUTPUT_MARGIN x the
  largest of the context window, the model's output limit and the request's max_tokens; when the
  endpoint does not know the model (no catalog limits), both are at most HARD_MAX_TOKENS.

The output bound is deliberately not max_tokens itself: reasoning tokens are billed as output and some
APIs do not count them against max_tokens (Gemini's thinking budget, for one), and counting differs
slightly between providers; no real answer outgrows what the context window could ever hold, twice.
Anything else is `ImplausibleUsageError`, a BAD_RESPONSE attempt (the engine falls back), never a bill.

Standard library only and pure: the boundary logs and counts what fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router_service.domain import ChatRequest, Usage
from router_service.errors import ErrorClass, ProviderError

# The largest context windows offered today are ~10M tokens; nothing reports more in one answer.
HARD_MAX_TOKENS = 10_000_000
INPUT_MARGIN = 2
OUTPUT_MARGIN = 2

# Reasons, a closed set: the metric's label values.
NOT_INTEGER = "not_integer"
NEGATIVE = "negative"
CACHED_ABOVE_INPUT = "cached_above_input"
INPUT_ABOVE_BOUND = "input_above_bound"
OUTPUT_ABOVE_BOUND = "output_above_bound"
REASONS = (NOT_INTEGER, NEGATIVE, CACHED_ABOVE_INPUT, INPUT_ABOVE_BOUND, OUTPUT_ABOVE_BOUND)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What the catalog says a model can take and produce."""

    context_window: int
    max_output_tokens: int


class ImplausibleUsageError(ProviderError):
    """The upstream answered, but with token counts that cannot be true: BAD_RESPONSE, not billed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(ErrorClass.BAD_RESPONSE, f"malformed upstream response: implausible usage: {detail}")
        self.reason = reason


def wire_count(obj: Mapping[str, object], key: str) -> int:
    """A token count from a wire usage object: absent or null is 0, anything but a non-negative
    JSON integer is ImplausibleUsageError."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImplausibleUsageError(NOT_INTEGER, f"{key} is a {type(value).__name__}, not an integer")
    if value < 0:
        raise ImplausibleUsageError(NEGATIVE, f"{key} is negative")
    return value


def usage_object(value: object, where: str) -> Mapping[str, object]:
    """A wire usage object, or {} when absent; anything else is ImplausibleUsageError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImplausibleUsageError(NOT_INTEGER, f"{where} is not an object")
    return value


def usage_bounds(request: ChatRequest, limits: ModelLimits | None) -> tuple[int, int]:
    """(max input tokens, max output tokens) a plausible answer to `request` reports."""
    if limits is None:
        return HARD_MAX_TOKENS, HARD_MAX_TOKENS
    requested = request.params.max_output_tokens or 0
    largest_output = max(limits.context_window, limits.max_output_tokens, requested)
    return (
        min(HARD_MAX_TOKENS, INPUT_MARGIN * limits.context_window),
        min(HARD_MAX_TOKENS, OUTPUT_MARGIN * largest_output),
    )


def check_usage(usage: Usage, request: ChatRequest, limits: ModelLimits | None) -> Usage:
    """`usage` if it is plausible for `request` on a model with `limits`, else ImplausibleUsageError."""
    counts = (
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("cached_input_tokens", usage.cached_input_tokens),
    )
    for name, count in counts:
        if isinstance(count, bool) or not isinstance(count, int):
            raise ImplausibleUsageError(NOT_INTEGER, f"{name} is not an integer")
        if count < 0:
            raise ImplausibleUsageError(NEGATIVE, f"{name} is negative")
    if usage.cached_input_tokens > usage.input_tokens:
        raise ImplausibleUsageError(
            CACHED_ABOVE_INPUT,
            f"cached_input_tokens {_short(usage.cached_input_tokens)} above input_tokens "
            f"{_short(usage.input_tokens)}",
        )
    max_input, max_output = usage_bounds(request, limits)
    if usage.input_tokens > max_input:
        raise ImplausibleUsageError(
            INPUT_ABOVE_BOUND, f"input_tokens {_short(usage.input_tokens)} above {max_input}"
        )
    if usage.output_tokens > max_output:
        raise ImplausibleUsageError(
            OUTPUT_ABOVE_BOUND, f"output_tokens {_short(usage.output_tokens)} above {max_output}"
        )
    return usage


def _short(count: int) -> str:
    """A count for a message: a JSON integer can have thousands of digits."""
    return str(count) if count < 10**15 else "over 10^15"
