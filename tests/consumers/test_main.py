"""Entry-point wiring: which runners `run_consumer` builds, options from the environment, CLI flags,
`router-service consume`."""

from __future__ import annotations

import argparse
from zoneinfo import ZoneInfoNotFoundError

import pytest
from prometheus_client import CollectorRegistry

from consumers import events as ce
from consumers.jobs import JobOptions
from consumers.kafka import KafkaOptions
from consumers.main import _job_options, add_arguments, build_runners
from consumers.metrics import ConsumerMetrics
from consumers.runner import RunnerConfig
from router_contract.snapshot_keys import parse_record_key, record_key
from router_launcher import cli
from tests.consumers.helpers import consumer_event


def _metrics() -> ConsumerMetrics:
    return ConsumerMetrics(CollectorRegistry())


def test_all_builds_one_runner_per_job_with_its_own_group_and_topic() -> None:
    runners = build_runners("all", KafkaOptions(), RunnerConfig(), _metrics())
    assert [(r.job.name, r.group_id, r.snapshot_topic) for r in runners] == [
        ("costs", "llmrouter-consumer-costs", "llmrouter.costs.v1"),
        ("health", "llmrouter-consumer-health", "llmrouter.health.v1"),
        ("quality", "llmrouter-consumer-quality", "llmrouter.quality.v1"),
    ]


def test_overrides_apply_to_a_single_job_only() -> None:
    config = RunnerConfig(group_id="g", snapshot_topic="s")
    [runner] = build_runners("costs", KafkaOptions(), config, _metrics())
    assert (runner.group_id, runner.snapshot_topic) == ("g", "s")
    with pytest.raises(ValueError, match="cannot apply to 'all'"):
        build_runners("all", KafkaOptions(), config, _metrics())
    with pytest.raises(ValueError, match="unknown consumer"):
        build_runners("latency", KafkaOptions(), RunnerConfig(), _metrics())


def test_kafka_options_from_the_environment() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "k1:9093,k2:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_USERNAME": "u",
        "KAFKA_SASL_PASSWORD": "s3cr3t-pw",
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
    }
    options = KafkaOptions.from_env(None, env)
    assert options.bootstrap_servers == "k1:9093,k2:9093"
    assert (options.security_protocol, options.sasl_plain_username, options.enable_idempotence) == (
        "SASL_PLAINTEXT",
        "u",
        False,
    )
    assert "s3cr3t-pw" not in repr(options)
    assert KafkaOptions.from_env("explicit:1", env).bootstrap_servers == "explicit:1"
    assert KafkaOptions.from_env(None, {}).bootstrap_servers == "127.0.0.1:9092"


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["health", "--snapshot-interval", "2.5", "--metrics-port", "0"])
    assert (args.kind, args.snapshot_interval, args.metrics_port, args.create_topics) == (
        "health",
        2.5,
        0,
        False,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["nope"])


def test_router_service_consume_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["consume", "--help"])
    assert exit_info.value.code == 0
    assert "{costs,health,quality,all}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["consume", "latency"])
    assert exit_info.value.code == 2


def test_router_service_consume_dispatches_to_the_consumers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[argparse.Namespace] = []

    def run_from_args(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    monkeypatch.setattr("consumers.main.run_from_args", run_from_args)
    argv = ["consume", "all", "--bootstrap", "k:9092", "--snapshot-interval", "2", "--create-topics"]
    assert cli.main(argv) == 7
    [args] = seen
    assert (args.kind, args.bootstrap, args.snapshot_interval) == ("all", "k:9092", 2.0)
    assert args.create_topics

    # Flags that name one job's group or topic are a usage error with `all`, before anything runs.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["consume", "all", "--group-id", "g"])
    assert exit_info.value.code == 2
    assert "cannot apply to 'all'" in capsys.readouterr().err
    assert len(seen) == 1


@pytest.mark.parametrize("dimension", ["team=search", "tag:a%3Db=c%23d", "_checkpoint", "openai/gpt-4o"])
def test_record_keys_round_trip(dimension: str) -> None:
    assert parse_record_key(record_key(dimension, 12)) == (dimension, 12)


@pytest.mark.parametrize("key", ["team=search", "x#", "x#-1", "x#a"])
def test_keys_no_consumer_wrote_are_rejected(key: str) -> None:
    with pytest.raises(ValueError):
        parse_record_key(key)


def test_cost_tag_dimensions_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["costs", "--cost-tag-dimensions", "feature, env,"])
    assert _job_options(args.cost_tag_dimensions) == JobOptions(frozenset({"feature", "env"}))

    monkeypatch.setenv("COST_TAG_DIMENSIONS", "team_feature")
    assert _job_options(None) == JobOptions(frozenset({"team_feature"}))
    assert _job_options("") == JobOptions()  # the flag wins, even when empty
    monkeypatch.delenv("COST_TAG_DIMENSIONS")
    assert _job_options(None) == JobOptions()  # default: no tag is a dimension
    assert JobOptions.from_env({"COST_TAG_DIMENSIONS": " , "}) == JobOptions()


def test_cost_time_zones_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["costs", "--cost-time-zones", "Europe/Berlin, UTC, Asia/Kolkata"])
    options = _job_options(None, None, args.cost_time_zones)
    assert options.cost_time_zones == ("Asia/Kolkata", "Europe/Berlin")  # UTC is always kept

    monkeypatch.setenv("COST_TIME_ZONES", "America/Sao_Paulo")
    assert _job_options(None).cost_time_zones == ("America/Sao_Paulo",)
    assert _job_options(None, None, "").cost_time_zones == ()  # the flag wins, even when empty
    with pytest.raises(ZoneInfoNotFoundError):  # a typo fails at startup, not silently
        _job_options(None, None, "Europe/Berln")


def test_the_costs_runner_aggregates_by_the_configured_tag_keys() -> None:
    options = JobOptions(frozenset({"feature"}))
    runners = build_runners("all", KafkaOptions(), RunnerConfig(), _metrics(), options)
    costs = next(runner for runner in runners if runner.job.name == "costs").job.new_aggregator()
    completion = ce.Completion("openai", "gpt-4o", 10, 5, 0, cost_nanos_usd=100)
    costs.apply(consumer_event(completion, tags={"feature": "chat", "note": "tok-1"}), 0)

    keys = [record.key for record in costs.changes(0.0)]
    assert [key for key in keys if key.startswith("tag:")] == ["tag:feature=chat"]


def test_up_gives_its_consumers_the_tag_dimensions_of_its_environment() -> None:
    from router_launcher.stack import StackConsumers

    options = JobOptions.from_env({"COST_TAG_DIMENSIONS": "feature,env"})
    consumers = StackConsumers(KafkaOptions(), create_topics=False, metrics_listen="", options=options)
    assert {runner.job.options for runner in consumers.runners} == {JobOptions(frozenset({"feature", "env"}))}
