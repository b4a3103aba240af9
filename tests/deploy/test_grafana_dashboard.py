"""deploy/grafana: the dashboard's queries are valid PromQL on series the code exports, and the
provisioning points Grafana at the data source and folder the dashboard expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, TARGET_LABELS, Exported, run_promtool, selectors
from tests.deploy.test_prometheus_rules import recorded_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD = json.loads((GRAFANA / "dashboards" / "llm-router.json").read_text())
# Grafana replaces these before Prometheus sees a query; the values are what it would send.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title and ref id, query as Prometheus receives it) of every query."""
    queries = []
    for panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((f"{panel['title']} {target['refId']}", expr))
    return queries


def test_promtool_parses_every_query(promtool: Path, tmp_path: Path) -> None:
    # promtool checks PromQL inside rule files, so each query becomes a recording rule.
    queries = [expr for _, expr in dashboard_queries()]
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries)]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = run_promtool(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in out


QUERIES = dashboard_queries()


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_queries_select_only_series_and_labels_the_code_exports(
    where: str, expr: str, exported: Exported
) -> None:
    found = selectors(expr)
    assert found, f"{where}: selects none of our series"
    for name, matched in found:
        if ":" in name:
            assert name in recorded_names(), f"{where}: {name} is not a recording rule of ours"
        else:
            assert name in exported, f"{where}: {name} is not exported"
            assert matched <= exported.labels[name] | TARGET_LABELS, (
                f"{where}: {name}: unknown labels {matched}"
            )


def test_the_instance_variable_lists_router_instances(exported: Exported) -> None:
    [variable] = DASHBOARD["templating"]["list"]
    [(name, _)] = selectors(variable["definition"])
    assert variable["name"] == "instance" and name in exported


def test_panels_have_unique_ids_and_use_the_provisioned_data_source() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    used = {panel["datasource"]["uid"] for panel in _panels()}
    used |= {target["datasource"]["uid"] for panel in _panels() for target in panel["targets"]}
    assert used == {source["uid"]}


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        pos = panel["gridPos"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        assert pos["x"] + pos["w"] <= 24
        taken |= cells
