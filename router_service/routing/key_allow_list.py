"""A key's allow-list narrowed to its regions, remembering both rules.

A key can limit routing twice: by model (catalog models or deployment keys) and by region.
identity/access.py folds the two into one set of deployment keys both admit, and that set
travels to the routing filter as the `allowed_models` frozenset it always was (through the
servicer, the engine, the router and the planner, none of which need to know). Only the filter
reads the two rules back, so that an excluded candidate's reason names the one that excluded it:
a deployment of an allowed model in a region the key may not use is excluded by region, not
"model not allowed". Standard library only, like the rest of routing/.
"""

from __future__ import annotations

from collections.abc import Iterable


class KeyAllowList(frozenset[str]):
    """The deployment keys a key may be answered by (a frozenset of them), with its own
    `models` allow-list (empty: any model) and `regions` (never empty here) they came from."""

    __slots__ = ("models", "regions")

    models: frozenset[str]
    regions: frozenset[str]

    def __new__(cls, keys: Iterable[str], *, models: frozenset[str], regions: frozenset[str]) -> KeyAllowList:
        allow_list = super().__new__(cls, keys)
        allow_list.models = models
        allow_list.regions = regions
        return allow_list

    def excluded_by_model(self, model: str, key: str) -> bool:
        """Whether the model rule (rather than only the region one) excludes deployment `key`."""
        return bool(self.models) and model not in self.models and key not in self.models
