"""Build the governor the config asks for (app.py calls this; the only place naming a store)."""

from __future__ import annotations

from router_service.limits.governor import Governor
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import LimitStore, MemoryLimitStore


def build_governor(config: LimitsConfig) -> Governor | None:
    """None when nothing is limited: the request path then skips admission entirely."""
    if not config.budgets and not config.rate_limits:
        return None
    return Governor(config.to_plan(), build_store(config))


def build_store(config: LimitsConfig) -> LimitStore:
    if config.store == "redis":
        return RedisLimitStore.from_url(
            config.redis_url.get_secret_value(), prefix=config.redis_prefix, timeout_s=config.store_timeout_s
        )
    return MemoryLimitStore()
