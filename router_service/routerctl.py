"""`routerctl`: a terminal client for people.

  routerctl complete "prompt" [--stream] [--model M | --alias A] [--policy P] [--system S]
  routerctl stream "prompt" ...            same as complete --stream
  routerctl route "prompt" ...             the routing decision, without calling any upstream
  routerctl feedback REQUEST_ID SCORE      record a quality score in [0, 1]
  routerctl health [--bootstrap B]         the fleet's provider health (the consumers' snapshots)
  routerctl costs [--window hour] [--bootstrap B]   the fleet's spend in the current window
  routerctl costs --team X [--window month] [--time-zone Z]   one caller's spend per model
                                           (also --key K, --customer C; hour, day, week, month)
  routerctl keys create|list|rotate|disable|enable ...   manage virtual keys (see keys_cli.py)
  routerctl budgets --config C [--entity team:search]   spend, reservations and what is left per
                                           limit, read from the limits store the config names

Calls send `authorization: Bearer $ROUTER_API_KEY` (or --api-key) when a key is given.

Prints the answer, then one routing summary line (model, attempts, latency, tokens, cost).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

import grpc
from aiokafka.errors import KafkaError
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_contract.windows import ROLLUP_GRAINS
from router_service import keys_cli
from router_service.fleet.config import FleetConfig
from router_service.fleet.spend import caller_spend, spend_table
from router_service.fleet.subscriber import read_fleet_view
from router_service.fleet.tables import costs_table, health_table
from router_service.telemetry.kafka_client import KafkaSecurity

DEFAULT_TARGET = os.environ.get("ROUTER_TARGET", "127.0.0.1:50051")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("health", "costs"):
        return _fleet(args)
    if args.command == "keys":
        return keys_cli.run(args)
    if args.command == "budgets":
        return _budgets(args)
    channel = grpc.insecure_channel(args.target)
    if args.api_key:
        channel = grpc.intercept_channel(channel, _Bearer(args.api_key))
    stub = pb_grpc.RouterServiceStub(channel)
    try:
        return int(_COMMANDS[args.command](stub, args))
    except grpc.RpcError as exc:
        _print_error(exc)
        return 1
    finally:
        channel.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routerctl", description="Talk to the LLM router.")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="router address (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ROUTER_API_KEY", ""),
        help="virtual key (default: $ROUTER_API_KEY)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("complete", "stream", "route"):
        p = sub.add_parser(name)
        p.add_argument("prompt")
        p.add_argument("--system", default="")
        p.add_argument("--model", default="")
        p.add_argument("--alias", default="")
        p.add_argument("--policy", default="")
        p.add_argument("--max-tokens", type=int, default=None)
        if name == "complete":
            p.add_argument("--stream", action="store_true")
    keys_cli.add_parser(sub)
    fb = sub.add_parser("feedback")
    fb.add_argument("request_id")
    fb.add_argument("score", type=float)
    budgets = sub.add_parser("budgets", help="read the limits store (the config's limits: section)")
    budgets.add_argument("--config", required=True, help="the router's config file")
    budgets.add_argument(
        "--entity",
        action="append",
        default=[],
        help='also show the "each entity" (*) limits for this one: key:<id>, team:<name>, customer:<name>',
    )
    for name in ("health", "costs"):
        p = sub.add_parser(name, help="read the consumers' snapshot topics (Kafka), not the router")
        p.add_argument(
            "--bootstrap",
            default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or %(default)s)",
        )
        p.add_argument("--topic", default="", help="snapshot topic (default: llmrouter.<health|costs>.v1)")
        if name == "costs":
            _costs_arguments(p)
    return parser


def _costs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", choices=ROLLUP_GRAINS, default="hour", help="the current one (default: hour)")
    who = p.add_mutually_exclusive_group()
    for level in ("key", "team", "customer"):
        who.add_argument(f"--{level}", default=None, help=f"one {level}'s spend per model")
    p.add_argument(
        "--time-zone",
        default="UTC",
        help="with --key/--team/--customer: calendar windows of this IANA zone, as budgets in "
        "limits.time_zone count them (the consumers keep them for COST_TIME_ZONES; default UTC)",
    )


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Sends `authorization: Bearer <key>` with every call."""

    def __init__(self, key: str) -> None:
        self._metadata = (("authorization", f"Bearer {key}"),)

    def _with_key(self, details: Any) -> Any:
        return details._replace(metadata=(*(details.metadata or ()), *self._metadata))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)


def _fleet(args: argparse.Namespace) -> int:
    """Reads the snapshot topics to their end and prints the fleet view. Kafka TLS/SASL options
    come from the same KAFKA_* variables the consumers read."""
    # Show every deployment with attempts, not only those with enough to route on.
    config = FleetConfig(min_attempts=1, min_feedback=1)
    if args.command == "health":
        config = dataclasses.replace(
            config, quality_topic="", costs_topic="", health_topic=args.topic or config.health_topic
        )
    else:
        config = dataclasses.replace(
            config, quality_topic="", health_topic="", costs_topic=args.topic or config.costs_topic
        )
    security = KafkaSecurity(
        security_protocol=os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        sasl_mechanism=os.environ.get("KAFKA_SASL_MECHANISM", "PLAIN"),
        sasl_plain_username=os.environ.get("KAFKA_SASL_USERNAME"),
        sasl_plain_password=os.environ.get("KAFKA_SASL_PASSWORD"),
        ssl_cafile=os.environ.get("KAFKA_SSL_CAFILE"),
    )
    try:
        view = asyncio.run(read_fleet_view(args.bootstrap, config, security=security, timeout_s=args.timeout))
    except (KafkaError, TimeoutError) as exc:
        print(f"error: cannot read the snapshot topics from {args.bootstrap}: {exc!r}", file=sys.stderr)
        return 1
    if args.command == "health":
        print(health_table(view, FleetConfig()))
        return 0
    caller = [(level, name) for level in ("key", "team", "customer") if (name := getattr(args, level))]
    if not caller:
        print(costs_table(view, args.window, time.time()))
        return 0
    [(level, name)] = caller
    try:
        spend = caller_spend(view, level, name, args.window, args.time_zone, time.time())
    except (ValueError, ZoneInfoNotFoundError) as exc:
        print(f"error: --window {args.window} --time-zone {args.time_zone}: {exc}", file=sys.stderr)
        return 1
    print(spend_table(view, spend))
    return 0


def _budgets(args: argparse.Namespace) -> int:
    """One read per limit from the store the config names (the in-process store of a router is
    its own: with `store: memory` there is nothing to read from outside it)."""
    from router_service.limits.factory import build_store
    from router_service.limits.report import named_bounds, table, usage
    from router_service.limits.store import StoreUnavailableError
    from router_service.settings import ConfigError, load_config

    try:
        limits = load_config(args.config).limits
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if limits.store != "redis":
        print("error: limits.store is memory: each router holds its own counters", file=sys.stderr)
        return 1

    async def read() -> str:
        store = build_store(limits)
        try:
            return table(await usage(store, named_bounds(limits.to_plan(), args.entity), time.time()))
        finally:
            await store.close()

    try:
        print(asyncio.run(read()))
    except StoreUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _chat(args: argparse.Namespace) -> pb.ChatRequest:
    messages = []
    if args.system:
        messages.append(pb.Message(role=pb.ROLE_SYSTEM, content=args.system))
    messages.append(pb.Message(role=pb.ROLE_USER, content=args.prompt))
    chat = pb.ChatRequest(messages=messages, routing=pb.RoutingHints(policy=args.policy))
    if args.model:
        chat.model.model = args.model
    elif args.alias:
        chat.model.alias = args.alias
    if args.max_tokens is not None:
        chat.options.max_output_tokens = args.max_tokens
    return chat


def _complete(stub: pb_grpc.RouterServiceStub, args: argparse.Namespace) -> int:
    if getattr(args, "stream", False):
        return _stream(stub, args)
    started = time.perf_counter()
    resp = stub.Complete(pb.CompleteRequest(chat=_chat(args)), timeout=args.timeout)
    print(resp.message.content)
    for call in resp.message.tool_calls:
        print(f"[tool call {call.name}({call.arguments_json})]")
    print(_summary(resp.routing, resp.usage, resp.cost, time.perf_counter() - started), file=sys.stderr)
    return 0


def _stream(stub: pb_grpc.RouterServiceStub, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    for msg in stub.Stream(pb.StreamRequest(chat=_chat(args)), timeout=args.timeout):
        kind = msg.WhichOneof("event")
        if kind == "delta":
            print(msg.delta.text, end="", flush=True)
        elif kind == "end":
            print()
            end = msg.end
            print(_summary(end.routing, end.usage, end.cost, time.perf_counter() - started), file=sys.stderr)
    return 0


def _route(stub: pb_grpc.RouterServiceStub, args: argparse.Namespace) -> int:
    d = stub.Route(pb.RouteRequest(chat=_chat(args)), timeout=args.timeout).decision
    task = pb.TaskType.Name(d.task_type).removeprefix("TASK_TYPE_").lower()
    print(f"policy={d.policy} strategy={d.strategy} task={task}")
    print(f"chosen: {d.chosen}")
    print(f"fallbacks: {', '.join(d.fallbacks) or '-'}")
    print(f"{'candidate':<32} {'eligible':<9} {'score':>8} {'quality':>8} {'est. cost $':>13}  reason")
    for c in d.candidates:
        cost = c.estimated_cost.units + c.estimated_cost.nanos / 1e9
        key = f"{c.provider}/{c.model}"
        # "?": unknown quality (no prior, no feedback), which quality floors do not exclude.
        quality = f"{c.quality:.3f}" + (" " if c.quality_known else "?")
        print(f"{key:<32} {c.eligible!s:<9} {c.score:>8.3f} {quality:>8} {cost:>13.9f}  {c.exclusion_reason}")
    return 0


def _feedback(stub: pb_grpc.RouterServiceStub, args: argparse.Namespace) -> int:
    stub.Feedback(pb.FeedbackRequest(request_id=args.request_id, score=args.score), timeout=args.timeout)
    print("recorded")
    return 0


def _summary(routing: pb.RoutingMetadata, usage: pb.Usage, cost: object, elapsed_s: float) -> str:
    units = getattr(cost, "units", 0) + getattr(cost, "nanos", 0) / 1e9
    return (
        f"-- {routing.provider}/{routing.model} | attempts {len(routing.attempts)} | "
        f"{elapsed_s * 1000:.0f} ms | tokens {usage.input_token_count} in / {usage.output_token_count} out | "
        f"${units:.9f} | request {routing.request_id}"
    )


def _print_error(exc: grpc.RpcError) -> None:
    code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
    details = exc.details() if hasattr(exc, "details") else str(exc)
    print(f"error: {code}: {details}", file=sys.stderr)
    status = rpc_status.from_call(exc)
    if status is None:
        return
    from google.rpc import error_details_pb2

    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                print(f"  {v.field}: {v.description}", file=sys.stderr)


_COMMANDS = {"complete": _complete, "stream": _stream, "route": _route, "feedback": _feedback}

if __name__ == "__main__":
    sys.exit(main())
