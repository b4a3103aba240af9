"""One table, per error class, of what a failed attempt means.

Every decision after a failure reads this table and nothing else: whether the engine retries the
same deployment, whether the failure counts against the deployment's health (towards
`allowed_fails`), whether it puts the deployment in cooldown at once, and where the request falls
back to. Config overrides any flag per class (`ErrorPolicy.with_overrides`).

Defaults follow the field's practice (LiteLLM, Envoy, TensorZero):
- a caller's invalid request is retried nowhere and says nothing about the provider;
- 429 puts the deployment in cooldown at once, honouring Retry-After, and moves on;
- an auth failure is a broken key: cool down for much longer and move on;
- context length goes to a model with a larger window;
- transient failures (timeouts, connection resets, 5xx, garbled bodies) are retried with backoff
  and count against health;
- a cancellation (caller left, a hedge lost) is nobody's failure.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from router_service.errors import ErrorClass


class Fallback(enum.Enum):
    NONE = "none"  # stop: the same request would fail anywhere
    NEXT = "next"  # the next deployment in the chain
    LARGER_CONTEXT = "larger_context"  # the next deployment in the chain with a larger context window


@dataclass(frozen=True, slots=True)
class ErrorRule:
    retry: bool  # retry the same deployment (with backoff, within the retry budget)
    counts_against_health: bool  # counts towards allowed_fails and the error rate
    cooldown: bool  # put the deployment in cooldown at once
    fallback: Fallback
    # Cooldown length for this class; None: the Retry-After the provider sent, else the breaker's
    # cooldown_s.
    cooldown_s: float | None = None


_DEFAULT_RULES: Mapping[ErrorClass, ErrorRule] = MappingProxyType(
    {
        ErrorClass.RATE_LIMITED: ErrorRule(
            retry=False, counts_against_health=True, cooldown=True, fallback=Fallback.NEXT
        ),
        ErrorClass.OVERLOADED: ErrorRule(
            retry=True, counts_against_health=True, cooldown=False, fallback=Fallback.NEXT
        ),
        ErrorClass.TIMEOUT: ErrorRule(
            retry=True, counts_against_health=True, cooldown=False, fallback=Fallback.NEXT
        ),
        ErrorClass.CONNECTION: ErrorRule(
            retry=True, counts_against_health=True, cooldown=False, fallback=Fallback.NEXT
        ),
        ErrorClass.AUTH: ErrorRule(
            retry=False, counts_against_health=True, cooldown=True, fallback=Fallback.NEXT, cooldown_s=300.0
        ),
        ErrorClass.INVALID_REQUEST: ErrorRule(
            retry=False, counts_against_health=False, cooldown=False, fallback=Fallback.NONE
        ),
        ErrorClass.CONTEXT_LENGTH_EXCEEDED: ErrorRule(
            retry=False, counts_against_health=False, cooldown=False, fallback=Fallback.LARGER_CONTEXT
        ),
        # Another provider's filter may accept what this one refused.
        ErrorClass.CONTENT_FILTERED: ErrorRule(
            retry=False, counts_against_health=False, cooldown=False, fallback=Fallback.NEXT
        ),
        ErrorClass.BAD_RESPONSE: ErrorRule(
            retry=True, counts_against_health=True, cooldown=False, fallback=Fallback.NEXT
        ),
        ErrorClass.CANCELLED: ErrorRule(
            retry=False, counts_against_health=False, cooldown=False, fallback=Fallback.NONE
        ),
    }
)

_FLAG_NAMES = frozenset(f.name for f in dataclasses.fields(ErrorRule))


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    rules: Mapping[ErrorClass, ErrorRule] = field(default_factory=lambda: _DEFAULT_RULES)

    def __post_init__(self) -> None:
        missing = [c.value for c in ErrorClass if c not in self.rules]
        if missing:
            raise ValueError(f"error policy has no rule for {', '.join(missing)}")

    def rule(self, error_class: ErrorClass) -> ErrorRule:
        return self.rules[error_class]

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Mapping[str, object]]) -> ErrorPolicy:
        """Defaults with config overrides: {"timeout": {"retry": False}, "auth": {"cooldown_s": 60}}.

        Unknown class or flag names, and values of the wrong type, raise ValueError naming them, so
        a typo fails at config load rather than silently keeping a default.
        """
        rules = dict(_DEFAULT_RULES)
        for class_name, flags in overrides.items():
            error_class = _parse_class(class_name)
            rules[error_class] = _override(rules[error_class], class_name, flags)
        return cls(MappingProxyType(rules))


def _parse_class(name: str) -> ErrorClass:
    try:
        return ErrorClass(name)
    except ValueError:
        known = ", ".join(c.value for c in ErrorClass)
        raise ValueError(f"error_policy.{name}: unknown error class (known: {known})") from None


def _override(rule: ErrorRule, class_name: str, flags: Mapping[str, object]) -> ErrorRule:
    unknown = set(flags) - _FLAG_NAMES
    if unknown:
        raise ValueError(f"error_policy.{class_name}: unknown flags {sorted(unknown)}")
    changes: dict[str, object] = {}
    for name, value in flags.items():
        changes[name] = _checked_value(class_name, name, value)
    return dataclasses.replace(rule, **changes)  # type: ignore[arg-type]


def _checked_value(class_name: str, name: str, value: object) -> object:
    path = f"error_policy.{class_name}.{name}"
    if name == "fallback":
        try:
            return Fallback(value)
        except ValueError:
            known = ", ".join(f.value for f in Fallback)
            raise ValueError(f"{path}: unknown fallback {value!r} (known: {known})") from None
    if name == "cooldown_s":
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{path}: must be a non-negative number or null")
        return None if value is None else float(value)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: must be true or false")
    return value


DEFAULT_ERROR_POLICY = ErrorPolicy()
