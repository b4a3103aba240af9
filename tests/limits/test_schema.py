"""The `limits:` config section: validated with messages naming the field, converted to the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router_service.identity.model import Identity
from router_service.limits.factory import build_governor
from router_service.limits.model import Level, Metric
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.schema import LimitsConfig
from router_service.settings import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def config_with(tmp_path: Path, limits: dict[str, Any]) -> Path:
    base = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    base["limits"] = limits
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_the_documented_examples_are_valid(tmp_path: Path) -> None:
    """The commented examples in config/example.yaml, uncommented, load and mean what they say."""
    text = (REPO / "config" / "example.yaml").read_text()
    section = text[text.index("\nlimits:") : text.index("\nevents:")]
    lines = [ln for ln in section.splitlines() if not ln.startswith(("  budgets: []", "  rate_limits: []"))]
    uncommented = "\n".join(
        ln.replace("  # ", "  ", 1)
        if ln.startswith("  #   ") or ln.startswith("  # budgets") or ln.startswith("  # rate_limits")
        else ln
        for ln in lines
    )
    limits = yaml.safe_load(uncommented)["limits"]
    plan = LimitsConfig.model_validate(limits).to_plan()
    bounds = plan.bounds_for(Identity(key_id="k1", team="search"))
    assert [(b.entity, b.limit.metric) for b in bounds] == [
        ("key:k1", Metric.REQUESTS),
        ("key:k1", Metric.TOKENS),
        ("key:k1", Metric.CONCURRENT),
        ("team:search", Metric.COST),
        ("global", Metric.COST),
    ]
    team = bounds[3].limit
    assert (team.amount, team.max_request_nanos, team.downgrade_policy) == (100 * 10**9, 5 * 10**8, "fast")
    load_config(config_with(tmp_path, limits), env={})


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"budgets": [{"level": "team", "usd": "1.5e3"}]}, "decimal string"),
        ({"budgets": [{"level": "team", "usd": "10000000"}]}, "2\\^53"),
        ({"budgets": [{"level": "global", "entity": "x", "usd": "1"}]}, "no entity"),
        ({"budgets": [{"level": "team", "usd": "1", "downgrade_at": 0.8}]}, "go together"),
        (
            {"budgets": [{"level": "team", "usd": "1", "downgrade_at": 0.8, "downgrade_policy": "nope"}]},
            "unknown policy 'nope'",
        ),
        (
            {"budgets": [{"level": "team", "usd": "1"}, {"level": "team", "usd": "2"}]},
            "budgets\\[1\\]: a second month",
        ),
        ({"rate_limits": [{"level": "key"}]}, "requests_per_minute, tokens_per_minute or concurrent"),
        ({"time_zone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"store": "redis"}, "needs redis_url"),
        ({"budgets": [{"level": "tenant", "usd": "1"}]}, "limits.budgets\\[0\\].level: Input should be"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    tmp_path: Path, limits: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_with(tmp_path, limits), env={})


def test_the_factory_builds_what_the_config_asks_for() -> None:
    assert build_governor(LimitsConfig()) is None  # nothing limited: no admission at all
    gov = build_governor(
        LimitsConfig.model_validate(
            {
                "store": "redis",
                "redis_url": "redis://127.0.0.1:1/0",
                "rate_limits": [{"level": "key", "concurrent": 1}],
            }
        )
    )
    assert gov is not None and isinstance(gov._store, RedisLimitStore)
    plan = LimitsConfig.model_validate({"rate_limits": [{"level": "key", "concurrent": 1}]}).to_plan()
    assert [(lim.level, lim.metric, lim.period) for lim in plan.limits] == [
        (Level.KEY, Metric.CONCURRENT, None)
    ]
