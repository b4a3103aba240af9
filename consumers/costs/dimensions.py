"""The dimensions one completion's cost (or one unused hedge answer's) is added to.

Every completion counts once in each of: `total=all`, `api_key=<id>`, `team=<team>`,
`customer=<customer>`, `model=<model>`, `provider=<provider>`, `tag:<key>=<value>` for each
caller tag whose key is a configured tag dimension (`--cost-tag-dimensions`; none by default),
and the per-model breakdowns of the caller's key, team and customer (`team=<team>,model=<model>`:
what `routerctl costs --team X` lists per model; their sum over models is the caller's total).
Other tags never become keys: a tag is whatever a caller sent (a note, a user id, a token
pasted by mistake), and every distinct value would be one more key of a compacted topic, kept
and readable for as long as its windows last. Empty values (no governance configured) are a
dimension of their own (`team=`), so the dimensions of one kind always add up to the total.
"""

from __future__ import annotations

import functools
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from consumers.events import Attempt, Completion, Envelope
from router_contract.snapshot_keys import part

OVERFLOW_VALUE = "_OTHER"  # where new dimensions go once a partition holds max_dimensions
TAG = "tag"
BREAKDOWN = "model"  # `team=search,model=gpt-4o`: the per-model part of a caller's spend
LIMITED = frozenset({"total", "api_key", "team", "customer"})  # the levels budgets have


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str  # total | api_key | team | customer | model | provider | tag
    value: str
    tag_key: str = ""  # only for name == "tag"
    model: str = ""  # a per-model breakdown of an api_key, team or customer: its spend on this model

    @property
    def key(self) -> str:
        return _key(self.name, self.tag_key, self.value, self.model)

    @property
    def is_limited(self) -> bool:
        """Whether budgets can count this dimension (a key, team, customer or the total, not a
        per-model share): only these keep rolling-budget buckets (rollup.py)."""
        return self.name in LIMITED and not self.model

    def overflow(self) -> Dimension:
        return Dimension(
            self.name,
            OVERFLOW_VALUE,
            OVERFLOW_VALUE if self.name == TAG else "",
            OVERFLOW_VALUE if self.model else "",
        )

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "value": self.value}
        if self.name == TAG:
            out["tag_key"] = self.tag_key
        if self.model:
            out["model"] = self.model
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dimension:
        return cls(
            str(data["name"]), str(data["value"]), str(data.get("tag_key", "")), str(data.get("model", ""))
        )


def dimensions_of(
    envelope: Envelope, completion: Completion | Attempt, tag_keys: AbstractSet[str] = frozenset()
) -> list[Dimension]:
    """`tag_keys`: the caller tag keys that are dimensions; the event's other tags are not."""
    model = completion.model
    dimensions = [
        Dimension("total", "all"),
        Dimension("api_key", envelope.api_key_id),
        Dimension("team", envelope.team),
        Dimension("customer", envelope.customer),
        Dimension("model", model),
        Dimension("provider", completion.provider),
        Dimension("api_key", envelope.api_key_id, model=model),
        Dimension("team", envelope.team, model=model),
        Dimension("customer", envelope.customer, model=model),
    ]
    if tag_keys and envelope.tags:
        dimensions += [Dimension(TAG, value, key) for key, value in envelope.tags.items() if key in tag_keys]
    return dimensions


def is_configured(dimension: Dimension, tag_keys: AbstractSet[str]) -> bool:
    """Whether a (restored) dimension is one this configuration builds: a tag dimension whose key
    is no longer configured is not (its overflow bucket always is: it only shrinks)."""
    return dimension.name != TAG or dimension.tag_key in tag_keys or dimension.tag_key == OVERFLOW_VALUE


@functools.lru_cache(maxsize=65_536)  # the same few thousand dimensions recur in every batch
def _key(name: str, tag_key: str, value: str, model: str) -> str:
    if name == TAG:
        return f"{TAG}:{part(tag_key)}={part(value)}"
    if model:
        return f"{name}={part(value)},{BREAKDOWN}={part(model)}"
    return f"{name}={part(value)}"
