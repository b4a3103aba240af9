"""How much code one `Complete` call walks through in the router: modules, functions, transitions.

    .venv/bin/python -m bench.request_path_census            # counts for a few traced calls
    .venv/bin/python -m bench.request_path_census --list     # and which functions, module by module

A `RouterApp` with bench/overhead.py's config (one model on the simulated provider, metrics
observer and interceptor on, events off) serves real gRPC on loopback in this process, on uvloop
like `router-service serve`; the simulated provider (preset "instant") runs in a child process,
so none of its code is counted.
After a warm-up, `sys.setprofile` records every Python function entered in this thread from just
before one `Complete` is sent until shortly after its answer arrived (the server's tail work).
A coroutine counts as entered each time it resumes, which is what a reader follows too.

Reported per traced call:
- router modules / functions: distinct files and functions under router_service/ (the request
  path as a newcomer has to read it);
- module transitions: how often consecutive router function entries are in different modules;
- all modules / functions: every Python file entered, libraries included (grpc.aio, aiohttp,
  prometheus_client...). The gRPC client in this process shares library files with the server,
  so this line is an upper bound; the router_service lines are not affected by it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import uvloop

from bench.overhead_clients import PROMPT
from bench.profile_servers import router_app, router_config, sim_main
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = str(ROOT / "router_service") + "/"
NOT_ROUTER = (PACKAGE + "sim/",)  # the simulated provider: not the router's request path
TAIL_S = 0.05  # after the answer: the server's span of the call ends after the client has it


@dataclass
class Trace:
    entries: list[tuple[str, str]] = field(default_factory=list)  # (file, qualname), in order

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            self.entries.append((code.co_filename, code.co_qualname))


@dataclass(frozen=True)
class Census:
    router_modules: int
    router_functions: int
    router_transitions: int
    all_modules: int
    all_functions: int
    by_module: dict[str, list[str]]


def is_router(path: str) -> bool:
    return path.startswith(PACKAGE) and not path.startswith(NOT_ROUTER)


def census(trace: Trace) -> Census:
    router = [(f, q) for f, q in trace.entries if is_router(f)]
    transitions = sum(1 for (a, _), (b, _) in itertools.pairwise(router) if a != b)
    by_module: dict[str, set[str]] = {}
    for path, name in router:
        by_module.setdefault(path, set()).add(name)
    return Census(
        router_modules=len(by_module),
        router_functions=len(set(router)),
        router_transitions=transitions,
        all_modules=len({f for f, _ in trace.entries}),
        all_functions=len(set(trace.entries)),
        by_module={str(Path(p).relative_to(ROOT)): sorted(n) for p, n in sorted(by_module.items())},
    )


async def traced_calls(sim_url: str, warmup: int, traced: int) -> list[Census]:
    chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)])
    request = pb.CompleteRequest(chat=chat)
    results = []
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(router_app(router_config(sim_url, None)))
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(f"127.0.0.1:{port}"))
        complete = pb_grpc.RouterServiceStub(channel).Complete
        for _ in range(warmup):
            await complete(request, timeout=10)
        for _ in range(traced):
            trace = Trace()
            sys.setprofile(trace.hook)
            try:
                response = await complete(request, timeout=10)
                await asyncio.sleep(TAIL_S)
            finally:
                sys.setprofile(None)
            if not response.message.content:
                raise RuntimeError("empty answer from the router")
            results.append(census(trace))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3, help="traced calls, one census each")
    parser.add_argument("--list", action="store_true", help="list the router functions entered")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    sim = ctx.Process(target=sim_main, args=(ports, None), daemon=True)
    sim.start()
    try:
        sim_url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
        results = uvloop.run(traced_calls(sim_url, args.warmup, args.calls))  # as `serve` runs
    finally:
        sim.terminate()
        sim.join(5)
    print("call  router modules  router functions  module transitions  all modules  all functions")
    for i, c in enumerate(results):
        print(
            f"{i:>4}  {c.router_modules:>14}  {c.router_functions:>16}  {c.router_transitions:>18}"
            f"  {c.all_modules:>11}  {c.all_functions:>13}"
        )
    if args.list:
        last = results[-1]
        sizes = Counter({module: len(names) for module, names in last.by_module.items()})
        for module, count in sorted(sizes.items()):
            print(f"\n{module} ({count}): {', '.join(last.by_module[module])}")


if __name__ == "__main__":
    main()
