"""Entry points of the consumer processes.

`run_consumer(kind, bootstrap, ...)` runs one job ("costs", "health", "quality") or all three
("all", one consumer group each, in one process) until SIGTERM or SIGINT, then flushes, commits
and exits 0. It is what `router-service consume {health,costs,quality,all}` calls;
`add_arguments` / `run_from_args` give that subcommand its flags. `serve(runners)` is the async
form, for a process that runs the consumers next to other things (the embedded stack).

Configuration: Kafka connection from the arguments or the environment (KafkaOptions.from_env:
KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE,
KAFKA_ENABLE_IDEMPOTENCE=false against the embedded Tansu broker); group ids default to
`llmrouter-consumer-<kind>`, snapshot topics to `llmrouter.<kind>.v1`, the input topic to
`llmrouter.events.v1`; Prometheus metrics on 127.0.0.1:9465 (the router uses 9464). Which caller
tag keys are cost-rollup dimensions: `--cost-tag-dimensions feature,env`, else
$COST_TAG_DIMENSIONS, else none; which zones' calendar windows the cost rollups keep besides UTC
(those of the routers' `limits.time_zone`): `--cost-time-zones Europe/Berlin`, else
$COST_TIME_ZONES, else none (JobOptions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Sequence

from prometheus_client import start_http_server

from consumers.jobs import DEFAULT_INPUT_TOPIC, JOBS, JobOptions, job_named, tag_keys, time_zones
from consumers.kafka import KafkaOptions, TopicMissingError
from consumers.metrics import ConsumerMetrics, default_metrics
from consumers.runner import ConsumerRunner, RunnerConfig, RunnerError
from router_contract.snapshot_records import SNAPSHOT_ENCODINGS, SnapshotEncoding

log = logging.getLogger(__name__)

KINDS = (*JOBS, "all")
DEFAULT_METRICS_PORT = 9465


def configure_logging() -> None:
    """The router's log format ($LOG_LEVEL, default INFO), without importing the router."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


def run_consumer(
    kind: str,
    bootstrap: str | None = None,
    *,
    input_topic: str = DEFAULT_INPUT_TOPIC,
    group_id: str | None = None,
    group_instance_id: str = "",
    snapshot_topic: str | None = None,
    snapshot_interval_s: float = 5.0,
    snapshot_encoding: SnapshotEncoding = "protobuf",
    session_timeout_ms: int = 10_000,
    metrics_port: int | None = DEFAULT_METRICS_PORT,
    metrics_host: str = "127.0.0.1",
    create_topics: bool = False,
    kafka: KafkaOptions | None = None,
    options: JobOptions | None = None,
) -> int:
    """Run the consumer(s) until SIGTERM/SIGINT; the process exit code (0 after a clean stop).

    bootstrap: "host:port[,host:port]"; None -> $KAFKA_BOOTSTRAP_SERVERS -> 127.0.0.1:9092.
    group_id / snapshot_topic: override the job's defaults; only with a single kind.
    metrics_port: None disables the /metrics endpoint.
    create_topics: create missing snapshot topics (compacted); dev and embedded stack only.
    kafka: full connection options (security...); `bootstrap`, if given, replaces its servers.
    options: what the jobs aggregate by; None -> JobOptions.from_env().
    """
    log.info("starting the %s consumer", kind)  # imports done: a restart's first milestone
    kafka_options = _kafka_options(bootstrap, kafka)
    config = RunnerConfig(
        input_topic=input_topic,
        snapshot_topic=snapshot_topic or "",
        group_id=group_id or "",
        group_instance_id=group_instance_id,
        snapshot_interval_s=snapshot_interval_s,
        snapshot_encoding=snapshot_encoding,
        session_timeout_ms=session_timeout_ms,
        # Kafka's advice: heartbeats at most a third of the session timeout apart.
        heartbeat_interval_ms=min(3_000, session_timeout_ms // 3),
        create_topics=create_topics,
    )
    runners = build_runners(kind, kafka_options, config, default_metrics(), options or JobOptions.from_env())
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
    try:
        asyncio.run(serve(runners))
    except (RunnerError, TopicMissingError) as exc:
        log.error("consumer stopped: %s", exc)
        return 1
    return 0


def build_runners(
    kind: str,
    kafka: KafkaOptions,
    config: RunnerConfig,
    metrics: ConsumerMetrics,
    options: JobOptions | None = None,
) -> list[ConsumerRunner]:
    if kind not in KINDS:
        raise ValueError(f"unknown consumer {kind!r}; expected one of {list(KINDS)}")
    if kind == "all" and (config.group_id or config.snapshot_topic):
        raise ValueError("group_id and snapshot_topic name one job's; they cannot apply to 'all'")
    names = list(JOBS) if kind == "all" else [kind]
    return [ConsumerRunner(job_named(name, options), config, kafka, metrics) for name in names]


async def serve(runners: Sequence[ConsumerRunner], *, handle_signals: bool = True) -> None:
    """Run every runner until stopped (SIGTERM/SIGINT, or `runner.stop()`); if one fails, stop all."""
    if handle_signals:
        _stop_on_signals(runners)
    tasks = [asyncio.create_task(runner.run(), name=f"consumer-{runner.job.name}") for runner in runners]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for runner in runners:
            runner.stop()  # one failed (or all finished): the others flush and stop too
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raise the first failure
    finally:
        for task in tasks:
            task.cancel()


def _stop_on_signals(runners: Sequence[ConsumerRunner]) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / Windows
            loop.add_signal_handler(signum, _stop_all, runners)


def _stop_all(runners: Sequence[ConsumerRunner]) -> None:
    log.info("stopping consumers: flushing snapshots and committing offsets")
    for runner in runners:
        runner.stop()


def _kafka_options(bootstrap: str | None, kafka: KafkaOptions | None) -> KafkaOptions:
    if kafka is None:
        return KafkaOptions.from_env(bootstrap)
    if bootstrap:
        return dataclasses.replace(kafka, bootstrap_servers=bootstrap)
    return kafka


# --- the CLI subcommand ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `router-service consume`."""
    parser.add_argument("kind", choices=KINDS, help="which aggregator to run ('all': the three)")
    parser.add_argument("--bootstrap", default=None, help="Kafka servers (default KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--input-topic", default=DEFAULT_INPUT_TOPIC)
    parser.add_argument("--group-id", default=None, help="consumer group (default llmrouter-consumer-<kind>)")
    parser.add_argument(
        "--group-instance-id",
        default=os.environ.get("CONSUMER_GROUP_INSTANCE_ID", ""),
        help="static group membership: a stable name per instance (e.g. the pod name); a restart "
        "under it resumes at once instead of after the session timeout (default "
        "$CONSUMER_GROUP_INSTANCE_ID, else dynamic membership)",
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=int(os.environ.get("CONSUMER_SESSION_TIMEOUT_MS", "10000")),
        help="how long the group waits for a silent (killed) member before giving its partitions "
        "to another; Kafka brokers refuse values under group.min.session.timeout.ms (6 s by "
        "default); the embedded broker takes 2000 (default $CONSUMER_SESSION_TIMEOUT_MS, else 10000)",
    )
    parser.add_argument("--snapshot-topic", default=None, help="default llmrouter.<kind>.v1")
    parser.add_argument("--snapshot-interval", type=float, default=5.0, help="seconds between flushes")
    parser.add_argument(
        "--snapshot-encoding",
        choices=SNAPSHOT_ENCODINGS,
        default="protobuf",
        help="router.v1.Snapshot as protobuf (default) or its proto3 JSON mapping (kcat | jq)",
    )
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="0 or less: off")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--create-topics", action="store_true", help="create missing snapshot topics (dev)")
    parser.add_argument(
        "--cost-tag-dimensions",
        default=None,
        metavar="KEY,KEY",
        help="caller tag keys that are cost-rollup dimensions, e.g. feature,env (default "
        "$COST_TAG_DIMENSIONS, else none: other tags never become snapshot keys)",
    )
    parser.add_argument(
        "--cost-time-zones",
        default=None,
        metavar="ZONE,ZONE",
        help="IANA zones besides UTC whose calendar hours, days, weeks and months the cost rollups "
        "keep: the routers' limits.time_zone, e.g. Europe/Berlin, or those budgets are not "
        "reconciled (default $COST_TIME_ZONES, else none: UTC only)",
    )
    parser.add_argument(
        "--max-scorer-share",
        type=float,
        default=None,
        help="quality: the share of a model x task's feedback weight one API key may hold "
        "(default $QUALITY_MAX_SCORER_SHARE, else 0.05)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    return run_consumer(
        args.kind,
        args.bootstrap,
        input_topic=args.input_topic,
        group_id=args.group_id,
        group_instance_id=args.group_instance_id,
        snapshot_topic=args.snapshot_topic,
        snapshot_interval_s=args.snapshot_interval,
        snapshot_encoding=args.snapshot_encoding,
        session_timeout_ms=args.session_timeout_ms,
        metrics_port=args.metrics_port if args.metrics_port > 0 else None,
        metrics_host=args.metrics_host,
        create_topics=args.create_topics,
        options=_job_options(args.cost_tag_dimensions, args.max_scorer_share, args.cost_time_zones),
    )


def _job_options(
    cost_tag_dimensions: str | None, max_scorer_share: float | None = None, cost_time_zones: str | None = None
) -> JobOptions:
    options = JobOptions.from_env()
    if cost_tag_dimensions is not None:
        options = dataclasses.replace(options, cost_tag_dimensions=tag_keys(cost_tag_dimensions.split(",")))
    if cost_time_zones is not None:
        options = dataclasses.replace(options, cost_time_zones=time_zones(cost_time_zones))
    if max_scorer_share is not None:
        options = dataclasses.replace(options, quality_max_scorer_share=max_scorer_share)
    return options
