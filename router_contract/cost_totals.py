"""Exact cost and token sums of one window, and their JSON form.

Money is integer nano-USD, as in the events: sums over millions of requests stay exact, and
partitions merge by integer addition. int64-sized amounts are JSON strings, as in the proto3 JSON
mapping of the events, so JavaScript readers do not round them; `cost_usd` is the same amount as
a decimal string, for people reading kcat output.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Protocol


class CompletionCost(Protocol):
    """What `Totals.add` reads of a completion (consumers.events.Completion has it)."""

    @property
    def cache_hit(self) -> bool: ...
    @property
    def cost_nanos_usd(self) -> int: ...
    @property
    def cost_saved_nanos_usd(self) -> int: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_input_tokens(self) -> int: ...


class UnusedAnswerCost(Protocol):
    """What `Totals.add_unused` reads of an attempt whose answer nobody used (consumers.events.Attempt)."""

    @property
    def unused_cost_nanos_usd(self) -> int: ...
    @property
    def unused_input_tokens(self) -> int: ...
    @property
    def unused_output_tokens(self) -> int: ...
    @property
    def unused_cached_input_tokens(self) -> int: ...


NANOS_PER_USD = 1_000_000_000
# Amounts printed as strings; counts of requests stay JSON numbers.
_AMOUNTS = (
    "cost_nanos_usd",
    "cost_saved_nanos_usd",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "unused_cost_nanos_usd",
    "served_input_tokens",
    "served_output_tokens",
)
_COUNTS = ("requests", "cache_hits", "unused_answers")
# Added after the first snapshots were written: absent from those, read as 0.
_ADDED_LATER = frozenset(
    {"unused_answers", "unused_cost_nanos_usd", "served_input_tokens", "served_output_tokens"}
)


@dataclass(slots=True)
class Totals:
    """What the upstreams billed: the answers callers got (`requests`), plus answers nobody used
    (hedge losers that finished anyway), whose share is also shown on its own (`unused_*`).
    The token sums are billed tokens: a cache hit's usage was billed once, by the call that made
    the answer, so a hit adds its tokens to `served_*` (served from the cache) instead."""

    requests: int = 0
    cache_hits: int = 0
    cost_nanos_usd: int = 0  # everything billed, unused answers included
    cost_saved_nanos_usd: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    unused_answers: int = 0
    unused_cost_nanos_usd: int = 0
    served_input_tokens: int = 0  # a hit's input tokens (cached ones included): nobody billed them
    served_output_tokens: int = 0

    def add(self, completion: CompletionCost) -> None:
        self.requests += 1
        self.cache_hits += completion.cache_hit
        self.cost_nanos_usd += completion.cost_nanos_usd
        self.cost_saved_nanos_usd += completion.cost_saved_nanos_usd
        if completion.cache_hit:
            self.served_input_tokens += completion.input_tokens
            self.served_output_tokens += completion.output_tokens
            return
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        self.cached_input_tokens += completion.cached_input_tokens

    def add_unused(self, attempt: UnusedAnswerCost) -> None:
        self.unused_answers += 1
        self.unused_cost_nanos_usd += attempt.unused_cost_nanos_usd
        self.cost_nanos_usd += attempt.unused_cost_nanos_usd
        self.input_tokens += attempt.unused_input_tokens
        self.output_tokens += attempt.unused_output_tokens
        self.cached_input_tokens += attempt.unused_cached_input_tokens

    def merge(self, other: Totals) -> None:
        for name in _FIELD_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        out.update({name: str(getattr(self, name)) for name in _AMOUNTS})
        out["cost_usd"] = usd_text(self.cost_nanos_usd)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Totals:
        return cls(
            **{
                name: int(data.get(name, 0) if name in _ADDED_LATER else data[name])
                for name in (*_COUNTS, *_AMOUNTS)
            }
        )


_FIELD_NAMES = tuple(field.name for field in fields(Totals))


def usd_text(nanos_usd: int) -> str:
    """Exact decimal dollars: 1234567 -> "0.001234567"."""
    return format(Decimal(nanos_usd).scaleb(-9), "f")
