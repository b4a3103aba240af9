"""`routerctl`: a terminal client for people.

  routerctl complete "prompt" [--stream] [--model M | --alias A] [--policy P] [--system S]
  routerctl stream "prompt" ...            same as complete --stream
  routerctl route "prompt" ...             the routing decision, without calling any upstream
  routerctl feedback REQUEST_ID SCORE      record a quality score in [0, 1]

Prints the answer, then one routing summary line (model, attempts, latency, tokens, cost).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import grpc
from grpc_status import rpc_status

from router_service._gen.router.v1 import router_pb2 as pb
from router_service._gen.router.v1 import router_pb2_grpc as pb_grpc

DEFAULT_TARGET = os.environ.get("ROUTER_TARGET", "127.0.0.1:50051")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    channel = grpc.insecure_channel(args.target)
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
    fb = sub.add_parser("feedback")
    fb.add_argument("request_id")
    fb.add_argument("score", type=float)
    return parser


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
    print(f"{'candidate':<32} {'eligible':<9} {'score':>8} {'est. cost $':>13}  reason")
    for c in d.candidates:
        cost = c.estimated_cost.units + c.estimated_cost.nanos / 1e9
        key = f"{c.provider}/{c.model}"
        print(f"{key:<32} {c.eligible!s:<9} {c.score:>8.3f} {cost:>13.9f}  {c.exclusion_reason}")
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
