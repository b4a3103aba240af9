"""What operators read: `routerctl budgets` (from the shared store, a real redis-server) and the
per-limit gauges a router refreshes; limits of each entity ("*") are read for named entities
only, never by scanning the store."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from router_service import routerctl
from router_service.governance import Governance
from router_service.identity.model import Identity
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.report import named_bounds, usage
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import MemoryLimitStore

CONFIG = {
    "budgets": [
        {"level": "team", "entity": "search", "usd": "2.50"},
        {"level": "team", "usd": "1.00"},  # each other team
    ],
    "rate_limits": [{"level": "global", "requests_per_minute": 100}],
}
SEARCH = Identity(key_id="k_1", team="search")
ADS = Identity(key_id="k_2", team="ads")


def limits(**extra: object) -> LimitsConfig:
    return LimitsConfig.model_validate({**CONFIG, **extra})


async def test_named_and_global_limits_are_read_and_each_entity_only_when_asked() -> None:
    store = MemoryLimitStore()
    governor = Governor(limits().to_plan(), store)
    held = await governor.admit(SEARCH, Estimate(cost_nanos=300_000_000, tokens=10))
    await (await governor.admit(ADS, Estimate(cost_nanos=200_000_000, tokens=10))).settle(150_000_000, 10)
    rows = {(r.entity, r.metric): r for r in await usage(store, named_bounds(governor.plan), time.time())}
    assert set(rows) == {("team:search", "cost"), ("global", "requests")}
    search = rows["team:search", "cost"]
    assert (search.limit, search.used, search.reserved, search.remaining) == (
        2_500_000_000,
        0,
        300_000_000,
        2_200_000_000,
    )
    assert (rows["global", "requests"].used, rows["global", "requests"].reserved) == (1, 1)
    asked = await usage(store, named_bounds(governor.plan, ["team:ads", "team:search"]), time.time())
    ads = [r for r in asked if r.entity == "team:ads"]
    assert [(r.metric, r.limit, r.used, r.reserved) for r in ads] == [("cost", 1_000_000_000, 150_000_000, 0)]
    assert sum(r.entity == "team:search" for r in asked) == 1  # its own limit, not the "*" one too
    await held.release()


async def test_the_gauges_show_limit_used_and_reserved() -> None:
    governor = Governor(limits().to_plan(), MemoryLimitStore())
    governance = Governance(governor)
    admission = await governor.admit(SEARCH, Estimate(cost_nanos=300_000_000, tokens=10))
    await governance.report()
    labels = {"level": "team", "entity": "team:search", "metric": "cost"}
    assert REGISTRY.get_sample_value("llmrouter_limits_limit", labels) == 2_500_000_000
    assert REGISTRY.get_sample_value("llmrouter_limits_reserved", labels) == 300_000_000
    await admission.settle(120_000_000, 10)
    await governance.report()
    assert REGISTRY.get_sample_value("llmrouter_limits_used", labels) == 120_000_000
    assert REGISTRY.get_sample_value("llmrouter_limits_reserved", labels) == 0
    assert REGISTRY.get_sample_value("llmrouter_limits_store_reachable") == 1


async def test_an_unreachable_store_sets_the_reachable_gauge_to_zero() -> None:
    store = RedisLimitStore.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens there
    governance = Governance(Governor(limits().to_plan(), store))
    try:
        await governance.report()
    finally:
        await store.close()
    assert REGISTRY.get_sample_value("llmrouter_limits_store_reachable") == 0


def test_routerctl_budgets_reads_the_shared_store(
    redis_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:{{limits}}:"
    section = {**CONFIG, "store": "redis", "redis_url": redis_server, "redis_prefix": prefix}
    config = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
        "models": [{"name": "m", "provider": "p", "price_per_mtok": {"input": "1", "output": "1"}}],
        "policies": {"default": {"models": ["m"]}},
        "limits": section,
    }
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))

    async def spend() -> None:
        store = RedisLimitStore.from_url(redis_server, prefix=prefix, timeout_s=5)
        governor = Governor(limits().to_plan(), store)
        try:
            await (await governor.admit(ADS, Estimate(cost_nanos=400_000_000, tokens=1))).settle(
                250_000_000, 1
            )
        finally:
            await store.close()

    asyncio.run(spend())
    assert routerctl.main(["budgets", "--config", str(path), "--entity", "team:ads"]) == 0
    lines = {
        line.split()[0] + " " + line.split()[1]: line.split()
        for line in capsys.readouterr().out.splitlines()[1:]
    }
    ads = lines["team:ads cost"]
    assert ads[-4:] == ["$1.000000000", "$0.250000000", "$0.000000000", "$0.750000000"]
    assert lines["global requests"][-4:] == ["100", "1", "0", "99"]
    assert lines["team:search cost"][-3:] == ["$0.000000000", "$0.000000000", "$2.500000000"]
