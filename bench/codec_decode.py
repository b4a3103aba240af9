"""Request decoding in process: `codec.cached_call_from_proto` (protobuf -> validated ChatRequest)
on realistic requests, this tree's codec against a baseline copy of the module, in one run.

    .venv/bin/python -m bench.codec_decode [--baseline OLD_CODEC.py] [--rounds 15] [--number 5000]

`--baseline` loads another version of api/codec.py (e.g. `git show <commit>:router_service/api/codec.py`)
beside this one; both import the same domain, rules and generated code, so only the codec differs.
The variants are timed in alternating rounds (the shared box's noise lands on both alike); per
request and variant: median and min microseconds per decode over the rounds, and the ratio of the
medians. Writes bench/results/codec_decode.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from google.protobuf import struct_pb2

from bench.cache_grpc import HIT
from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.api import codec

RESULTS = Path(__file__).parent / "results" / "codec_decode.json"


def full_request() -> pb.CompleteRequest:
    """Every part a routed tool call uses: a tool round trip, options, hints, tags, cache directives."""
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"order": {"type": "string"}}})
    chat = pb.ChatRequest(
        messages=[
            pb.Message(role=pb.ROLE_SYSTEM, content=HIT.chat.messages[0].content),
            pb.Message(role=pb.ROLE_USER, content="Where is my order #1?"),
            pb.Message(
                role=pb.ROLE_ASSISTANT,
                tool_calls=[pb.ToolCall(id="c1", name="track", arguments_json='{"order": "1"}')],
            ),
            pb.Message(role=pb.ROLE_TOOL, tool_call_id="c1", content="shipped on Monday"),
        ],
        options=pb.GenerationOptions(temperature=0.0, max_output_tokens=256, seed=7),
        tools=[pb.Tool(name="track", description="an order's status", parameters=params)],
        routing=pb.RoutingHints(
            policy="default", min_quality=0.5, data_sensitivity=pb.DATA_SENSITIVITY_INTERNAL
        ),
        tags={"feature": "orders", "team": "support"},
    )
    return pb.CompleteRequest(request_id="req-1", chat=chat, cache=pb.CacheDirectives(no_store=True))


REQUESTS = {
    "cache_grpc hit (2 messages, options)": HIT,
    "full (4 messages, tool, hints, tags)": full_request(),
}


def load_codec(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_codec_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decoder(module: Any, request: pb.CompleteRequest) -> Callable[[], object]:
    """What the servicer does with a parsed CompleteRequest before it routes."""

    def decode() -> object:
        cache = request.cache if request.HasField("cache") else None
        return module.cached_call_from_proto(request.request_id, request.chat, cache)

    return decode


def measure(variants: dict[str, Any], rounds: int, number: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, request in REQUESTS.items():
        calls = {name: decoder(module, request) for name, module in variants.items()}
        outputs = {name: call() for name, call in calls.items()}
        assert len({repr(o) for o in outputs.values()}) == 1, "the variants decode differently"
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):  # alternating: each round times every variant once
            for name, call in calls.items():
                samples[name].append(timeit.timeit(call, number=number) / number * 1e6)
        results[label] = {
            name: {"median_us": statistics.median(s), "min_us": min(s), "rounds_us": s}
            for name, s in samples.items()
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="another version of router_service/api/codec.py")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=5000, help="decodes per timed round")
    args = parser.parse_args(argv)
    variants: dict[str, Any] = {"this tree": codec}
    if args.baseline is not None:
        variants["baseline"] = load_codec(args.baseline)
    report = {
        "requests": measure(variants, args.rounds, args.number),
        "params": vars(args) | {"baseline": str(args.baseline)},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for label, by_variant in report["requests"].items():
        for name, r in by_variant.items():
            print(f"{label:38} {name:10} median {r['median_us']:.2f} us  min {r['min_us']:.2f} us")
        if "baseline" in by_variant:
            ratio = by_variant["this tree"]["median_us"] / by_variant["baseline"]["median_us"]
            print(f"{label:38} this tree / baseline (medians) x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
