"""Where the request path's time goes, by component: cProfile's functions and py-spy's sampled
stacks (native frames too) classified by the file each frame is in (pure, but for the printing).

`COMPONENTS` maps path fragments to components; builtins and stdlib frames are charged to the
component that called them (cProfile) or skipped over to the innermost frame that has one
(py-spy), so that a share says which of our parts, or which library, spent the time.
"""

from __future__ import annotations

import collections
import inspect
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from router_service.telemetry import observer as observer_module

# (component, fragments of a frame's file path). First match wins; "#..." tags are set below.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("grpc core + aio", ("/grpc/", "grpc/_cython", "/grpc_status/", "/grpc_health/")),
    ("protobuf", ("/google/protobuf/", "_pb2.py", "google._upb", "_message.abi3", "/google/type/")),
    ("api (servicer, codec, interceptor)", ("router_service/api/",)),
    ("OpenAI door (request, response, errors)", ("router_service/openai_door/", "request_rules.py")),
    (
        "engine + request path",
        (
            "router_service/engine.py",
            "router_service/targets.py",
            "router_service/attempt_recorder.py",
            "router_service/call.py",
            "router_service/clock.py",
        ),
    ),
    ("routing decision", ("router_service/routing/", "router_service/catalog.py")),
    ("live state (resilience)", ("router_service/resilience/",)),
    ("fleet", ("router_service/fleet/",)),
    ("providers (adapter, wire)", ("router_service/providers/",)),
    ("httpx", ("/httpx/", "/httpcore/")),
    (
        "aiohttp + transport",
        ("/aiohttp/", "/httpx_aiohttp/", "/multidict/", "/yarl/", "/propcache/", "_http_parser", "llhttp"),
    ),
    ("metrics (prometheus)", ("/prometheus_client/", "#metrics-observer")),
    ("events (build, encode, queue, send)", ("router_service/telemetry/", "/aiokafka/", "#events-observer")),
    ("domain", ("router_service/domain.py", "router_service/errors.py")),
    ("asyncio", ("/asyncio/", "_asynciomodule")),
    (
        "event loop + I/O (uvloop, libuv)",
        ("/uvloop/", "loop.c", "core.c", "linux.c", "stream.c", "uv-common"),
    ),
]
STDLIB = "stdlib / interpreter, unattributed"


def _observer_tags() -> list[tuple[int, int, str]]:
    """Line ranges of observer.py's classes: its metrics and events halves are different components."""
    ranges = []
    for cls, tag in (
        (observer_module.MetricsObserver, "#metrics-observer"),
        (observer_module.EventObserver, "#events-observer"),
    ):
        lines, start = inspect.getsourcelines(cls)
        ranges.append((start, start + len(lines), tag))
    return ranges


_OBSERVER_PATH = observer_module.__file__.replace(os.sep, "/")
_OBSERVER_TAGS = _observer_tags()


def component_of(path: str, line: int = 0) -> str | None:
    """The component a frame's file (native: library or C file) belongs to, or None."""
    if path.endswith("router_service/telemetry/observer.py") or path == _OBSERVER_PATH:
        # Its module-level helpers (_deployment, _attempt_children) cache the metrics children.
        path = "#metrics-observer"
        for start, end, tag in _OBSERVER_TAGS:
            if line and start <= line < end:
                path = tag
    for component, fragments in COMPONENTS:
        if any(fragment in path for fragment in fragments):
            return component
    return None


def print_shares(title: str, amounts: dict[str, float], per_request: float | None = None) -> None:
    """Shares of the total; with `per_request` (the amount one request accounts for), us too."""
    total = sum(amounts.values())
    print(title)
    for name, value in sorted(amounts.items(), key=lambda kv: -kv[1]):
        us = f"  {value / per_request:8.1f} us" if per_request else ""
        print(f"  {name:<38} {value / total * 100:5.1f}%{us}")


# --- cProfile breakdown ----------------------------------------------------------------------------


class ProfileClassifier:
    """Components of cProfile's functions; builtins and stdlib go to their heaviest caller's."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self._stats = stats
        self._memo: dict[Any, str] = {}

    def component(self, func: tuple[str, int, str], depth: int = 0) -> str:
        if func in self._memo:
            return self._memo[func]
        filename, line, name = func
        found = component_of(name if filename == "~" else filename.replace(os.sep, "/"), line)
        if found is None:
            found = STDLIB
            callers = self._stats[func][4]
            if callers and depth < 20:
                self._memo[func] = STDLIB  # breaks recursion cycles
                found = self.component(max(callers, key=lambda c: callers[c][2]), depth + 1)
        self._memo[func] = found
        return found


def print_profile(name: str, stats: dict[Any, Any], calls: int, top: int) -> None:
    """cProfile's self time by component per request, and with `top` the heaviest functions."""
    classify = ProfileClassifier(stats)
    seconds: dict[str, float] = collections.defaultdict(float)
    for func, (_, _, tottime, _, _) in stats.items():
        seconds[classify.component(func)] += tottime
    title = f"\n{name}: cProfile self time by component ({calls} calls; us inflated by cProfile)"
    print_shares(title, seconds, calls / 1e6)
    if top:
        print(f"  top {top} functions by self time (us per request, calls per request):")
        for (filename, line, func_name), (_, ncalls, tottime, _, _) in sorted(
            stats.items(), key=lambda kv: -kv[1][2]
        )[:top]:
            where = func_name if filename == "~" else f"{Path(filename).name}:{line}({func_name})"
            print(f"    {tottime / calls * 1e6:7.2f}  {ncalls / calls:5.1f}  {where[:110]}")


# --- py-spy breakdown ------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
# Leaf functions of a thread that is waiting, not working.
_IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "poll", "select", "nanosleep", "clock_nanosleep", "futex")
# Stacks of start-up and of the load generator's plumbing, not of requests.
_SETUP_MARKERS = ("RouterApp.start", "router_app", "echo_server", "_find_and_load", "events_config")


def classify_collapsed(lines: Iterable[str]) -> dict[str, float]:
    samples: dict[str, float] = collections.defaultdict(float)
    for raw in lines:
        stack, _, count = raw.rstrip().rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1].split(" ", 1)[0]
        idle_thread = "thread_run" in stack and leaf == "syscall"  # grpc's poller in a futex wait
        if leaf in _IDLE_LEAVES or idle_thread or any(marker in stack for marker in _SETUP_MARKERS):
            continue
        samples[_sample_component(frames)] += int(count)
    return samples


def _sample_component(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = _FRAME.match(frame)
        if match is None:
            continue
        # py-spy prints paths relative to site-packages ("aiohttp/client.py"): anchor them.
        path, line = "/" + match["path"], int(match["line"] or 0)
        found = component_of(path, line)
        if found is not None:
            return found
    return STDLIB


def print_collapsed(path: Path) -> None:
    with path.open() as lines:
        samples = classify_collapsed(lines)
    total = sum(samples.values())
    print_shares(f"{path}: {total:.0f} busy samples by component", samples)
