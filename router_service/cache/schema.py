"""The `cache:` config section (pydantic, at the edge) and its conversion to runtime values.

Every field is documented with its default in config/example.yaml. Off by default; when on, only
the policies and keys listed opt in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from router_service.cache.key import ScopeBy
from router_service.cache.rules import EVERYONE, CacheRules
from router_service.schema_base import StrictModel

# The Redis key prefix of entries. Here, not in redis_store.py: reading config must not import redis.
DEFAULT_PREFIX = "llmrouter:cache:"


class CacheConfig(StrictModel):
    """The response cache (README "Caching")."""

    enabled: bool = False
    store: Literal["memory", "redis"] = "memory"  # memory: this router alone; redis: shared
    redis_url: SecretStr = SecretStr("")  # redis://[:password@]host:port/db, for store: redis
    redis_prefix: str = DEFAULT_PREFIX
    store_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.1  # slower: a miss (or a skipped store)
    ttl_s: Annotated[float, Field(gt=0)] = 3600.0
    memory_max_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024  # store memory: the LRU bound
    max_entry_bytes: Annotated[int, Field(ge=256)] = 256 * 1024  # compressed; larger answers are not stored
    scope: Literal["team", "key"] = "team"  # entries shared within a customer's team, or per key
    policies: list[str] = []  # policies whose requests are cached ("*": all)
    keys: list[str] = []  # key ids whose requests are cached, whatever the policy ("*": all)
    cache_nondeterministic: bool = False  # also cache temperature > 0 without a seed
    cache_tools: bool = False  # also cache requests that offer tools
    coalesce: bool = True  # concurrent identical misses share one upstream call

    @model_validator(mode="after")
    def _consistent(self) -> CacheConfig:
        problems: list[str] = []
        if self.store == "redis" and not self.redis_url.get_secret_value():
            problems.append("store redis needs redis_url")
        if self.max_entry_bytes > self.memory_max_bytes:
            problems.append("max_entry_bytes is over memory_max_bytes")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def policy_problems(self, policies: Iterable[str]) -> list[str]:
        """Opted-in policies that the config does not define (checked with the whole file)."""
        known = set(policies) | {EVERYONE}
        listed = enumerate(self.policies)
        return [f"cache.policies[{i}]: unknown policy {p!r}" for i, p in listed if p not in known]

    def to_rules(self) -> CacheRules:
        return CacheRules(
            policies=frozenset(self.policies),
            keys=frozenset(self.keys),
            cache_nondeterministic=self.cache_nondeterministic,
            cache_tools=self.cache_tools,
        )

    @property
    def scope_by(self) -> ScopeBy:
        return ScopeBy(self.scope)
