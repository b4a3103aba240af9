"""The `cache:` config section: off by default, documented defaults equal the code's, validated with
messages naming the field, and what `build_cache` makes of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from router_service.cache.cache import Hit, Miss
from router_service.cache.entry import CachedAnswer
from router_service.cache.factory import build_cache
from router_service.cache.key import ScopeBy
from router_service.cache.rules import CacheRules
from router_service.cache.schema import CacheConfig
from router_service.clock import ManualClock
from router_service.domain import FinishReason, Usage
from router_service.settings import ConfigError, load_config
from tests.cache.helpers import ACME_SEARCH, request

REPO = Path(__file__).resolve().parents[2]


def config_with(tmp_path: Path, cache: dict[str, Any]) -> Path:
    base = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    base["cache"] = cache
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_the_documented_section_is_the_defaults_and_off() -> None:
    text = (REPO / "config" / "example.yaml").read_text()
    section = text[text.index("\ncache:") : text.index("\nevents:")].replace("${CACHE_REDIS_URL:-}", '""')
    documented = CacheConfig.model_validate(yaml.safe_load(section)["cache"])
    assert documented == CacheConfig()
    assert not documented.enabled and build_cache(documented, ManualClock()) is None


def test_a_config_file_with_the_cache_on_loads(tmp_path: Path) -> None:
    load_config(config_with(tmp_path, {"enabled": True, "policies": ["default"], "keys": ["*"]}), env={})


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        ({"enabled": True, "policies": ["nope"]}, "cache.policies\\[0\\]: unknown policy 'nope'"),
        ({"store": "redis"}, "store redis needs redis_url"),
        ({"max_entry_bytes": 2_000_000, "memory_max_bytes": 1_000_000}, "over memory_max_bytes"),
        ({"scope": "customer"}, "scope"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"colaesce": True}, "colaesce"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(
    tmp_path: Path, cache: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_with(tmp_path, cache), env={})


def test_the_redis_url_is_a_secret_in_reprs() -> None:
    config = CacheConfig(store="redis", redis_url="redis://:hunter2@db:6379/0")  # type: ignore[arg-type]
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())


def test_to_rules_and_scope() -> None:
    config = CacheConfig(policies=["default"], keys=["k1"], cache_tools=True, scope="key")
    assert config.to_rules() == CacheRules(frozenset({"default"}), frozenset({"k1"}), False, True)
    assert config.scope_by is ScopeBy.KEY
    with pytest.raises(ValidationError):
        CacheConfig(policies="default")  # type: ignore[arg-type]


async def test_build_cache_memory_is_a_working_cache() -> None:
    clock = ManualClock()
    cache = build_cache(CacheConfig(enabled=True, policies=["*"]), clock)
    assert cache is not None
    miss = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(miss, Miss)
    entry = CachedAnswer("4", (), FinishReason.STOP, Usage(1, 1), "openai/gpt-small", "m", clock.time())
    assert await cache.store(miss, entry)
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Hit)
    await cache.close()


async def test_build_cache_redis_uses_the_shared_server(redis_server: str) -> None:
    clock = ManualClock()
    config = CacheConfig(
        enabled=True, store="redis", redis_url=redis_server, redis_prefix="t-build:cache:", policies=["*"]
    )  # type: ignore[arg-type]
    writer, reader = build_cache(config, clock), build_cache(config, clock)  # two replicas
    assert writer is not None and reader is not None
    try:
        miss = await writer.lookup(ACME_SEARCH, request("replicas?"), "default")
        assert isinstance(miss, Miss)
        entry = CachedAnswer("yes", (), FinishReason.STOP, Usage(1, 1), "openai/gpt-small", "m", clock.time())
        assert await writer.store(miss, entry)
        hit = await reader.lookup(ACME_SEARCH, request("replicas?"), "default")
        assert isinstance(hit, Hit) and hit.entry == entry
    finally:
        await writer.close()
        await reader.close()
