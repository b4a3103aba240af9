"""Build the governor the config asks for (app.py calls this; the only place naming a store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router_service.limits.governor import Governor
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import LimitStore, MemoryLimitStore

if TYPE_CHECKING:
    from router_service.limits.redis_store import RedisLimitStore


def build_governor(config: LimitsConfig) -> Governor | None:
    """None when nothing is limited: the request path then skips admission entirely."""
    if not config.budgets and not config.rate_limits:
        return None
    return Governor(config.to_plan(), build_store(config))


def build_store(config: LimitsConfig) -> LimitStore:
    if config.store == "redis":
        return _redis_store().from_url(
            config.redis_url.get_secret_value(), prefix=config.redis_prefix, timeout_s=config.store_timeout_s
        )
    return MemoryLimitStore()


def _redis_store() -> type[RedisLimitStore]:
    # Imported only when Redis is configured: redis-py loads OpenTelemetry's SDK at import, which a
    # router with tracing off must not (tests/integration/test_tracing.py).
    from router_service.limits.redis_store import RedisLimitStore

    return RedisLimitStore
