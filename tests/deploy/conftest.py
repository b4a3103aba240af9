"""What the deploy/ files are checked against: the metrics the code exports, promtool, the CLI.

The point of these tests is that deploy/ cannot drift from the code: an alert on a renamed
metric, a dashboard query with a typo, a manifest passing a flag the CLI dropped or a config the
router would reject all fail `make test` instead of failing in someone's cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from consumers.metrics import ConsumerMetrics
from router_service.cache import metrics as cache_metrics
from router_service.fleet.metrics import FleetMetrics
from router_service.limits import metrics as limits_metrics
from router_service.resilience.live_state import LiveState
from router_service.telemetry import metrics as router_metrics
from router_service.telemetry.live_metrics import LiveStateCollector
from router_service.telemetry.publisher_metrics import PublisherMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Labels Prometheus adds to every scraped series, and the metric it makes per target.
TARGET_LABELS = frozenset({"job", "instance"})
SCRAPE_METRICS = {"up": frozenset[str]()}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


@dataclass(frozen=True)
class Exported:
    """Series names as scraped (counters with _total, histogram parts), each with its labels."""

    labels: dict[str, frozenset[str]]

    def __contains__(self, name: object) -> bool:
        return name in self.labels


def _metric_objects() -> Iterator[tuple[str, str, Iterable[str]]]:
    """(name, type, label names) of every metric the router and the consumers define."""
    registry = CollectorRegistry()
    holders = [
        vars(router_metrics),
        vars(cache_metrics),
        vars(limits_metrics),
        vars(PublisherMetrics(registry)),
        vars(FleetMetrics(registry)),
        vars(ConsumerMetrics(registry)),
    ]
    for holder in holders:
        for value in holder.values():
            if isinstance(value, MetricWrapperBase):
                # prometheus_client keeps the declared label names only in this attribute.
                yield value._name, str(value._type), value._labelnames
    # The per-deployment gauges come from a collector: read its families.
    for family in LiveStateCollector(LiveState, lambda: ["p/m"]).collect():
        yield family.name, family.type, family._labelnames


@pytest.fixture(scope="session")
def exported() -> Exported:
    labels: dict[str, frozenset[str]] = dict(SCRAPE_METRICS)
    for name, kind, names in _metric_objects():
        for suffix in _SUFFIXES[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            labels[name + suffix] = frozenset(names) | extra
    return Exported(labels)


_SELECTOR = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on) for each selector in `expr` of one of our metrics,
    a recording rule of ours (`llmrouter:...`) or `up`."""
    found = []
    for match in _SELECTOR.finditer(expr):
        name, braces = match.group(1), match.group(2) or ""
        if name == "up" or name.startswith("llmrouter"):
            found.append((name, set(_MATCHER.findall(braces))))
    return found


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool from `make` (scripts/fetch_promtool.sh); missing only when pytest runs alone.
    Never skipped: a missing tool fails with the command that fetches it."""
    path = ROOT / os.environ.get("PROMTOOL", "build/tools/promtool")
    if not path.exists():
        pytest.fail(f"promtool missing at {path}: run `make pytest` or `scripts/fetch_promtool.sh {path}`")
    return path


def run_promtool(promtool: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
