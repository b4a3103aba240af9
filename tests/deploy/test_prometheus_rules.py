"""deploy/prometheus: the rules load, their unit tests pass, and they name only real series."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, TARGET_LABELS, Exported, run_promtool, selectors

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules" / "llm-router.rules.yml"
RULE_TESTS = PROMETHEUS / "tests" / "llm-router.rules.test.yml"
SEVERITIES = {"page", "ticket"}


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def test_promtool_accepts_the_rules_and_the_compose_prometheus_config(promtool: Any) -> None:
    assert "SUCCESS" in run_promtool(promtool, "check", "rules", str(RULES), cwd=PROMETHEUS)
    # check config also loads the rule files it names (rules/*.yml): the same file, found by path.
    out = run_promtool(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert "1 rule files found" in out


def test_the_alert_unit_tests_pass(promtool: Any) -> None:
    run_promtool(promtool, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_every_alert_has_a_unit_test() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {check["alertname"] for case in cases for check in case.get("alert_rule_test", [])}
    assert {alert["alert"] for alert in _alerts()} - tested == set()


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_every_alert_says_how_urgent_and_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert alert["alert"].startswith("LLMRouter")


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule.get("alert") or rule["record"])
def test_rules_select_only_series_and_labels_the_code_exports(
    rule: dict[str, Any], exported: Exported
) -> None:
    recorded = recorded_names()
    found = selectors(rule["expr"])
    assert found, "a rule of ours selects none of our series"
    for name, matched in found:
        if ":" in name:
            assert name in recorded, f"{name}: no recording rule of that name"
            continue
        assert name in exported, f"{name}: the router and consumers export no such series"
        assert matched <= exported.labels[name] | TARGET_LABELS, f"{name}: unknown labels {matched}"


def test_the_checks_catch_a_renamed_metric(exported: Exported) -> None:
    # The check above, on a rule that names a metric the code does not export.
    [(name, _)] = selectors('rate(llmrouter_events_droped_total{reason="spool_full"}[5m]) > 0')
    assert name not in exported and "llmrouter_events_dropped_total" in exported
