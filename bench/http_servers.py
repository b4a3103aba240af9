"""Which HTTP server for the OpenAI door: a hello-world JSON POST on aiohttp vs uvicorn+starlette.

Each server runs in its own process (uvloop); one aiohttp client process drives it over loopback
with HTTP/1.1 keep-alive at concurrency 1 (p50 latency) and 32 (throughput), the variants back to
back in one run, rounds alternating, so load on a shared box hits both alike. uvicorn and starlette
are not dependencies: pass `--uvicorn-python` pointing at a venv that has them.

    .venv/bin/python bench/http_servers.py --uvicorn-python /tmp/h9bench/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time

import aiohttp

BODY = json.dumps({"model": "m1", "messages": [{"role": "user", "content": "Hello"}]}).encode()

AIOHTTP_SERVER = """
import sys, uvloop
from aiohttp import web
async def chat(request):
    await request.read()
    return web.Response(body=b'{"ok":true}', content_type="application/json")
app = web.Application(); app.router.add_post("/v1/chat/completions", chat)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
            loop=uvloop.new_event_loop())
"""
UVICORN_SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
async def chat(request):
    await request.body()
    return Response(b'{"ok":true}', media_type="application/json")
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            loop="uvloop", http="httptools")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.post(url, data=BODY) as r:
                    await r.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def drive(url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    """(requests per second, p50 latency in ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
                    await r.read()
                latencies.append(time.perf_counter() - started)

        begun = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begun
    return len(latencies) / elapsed, statistics.median(latencies) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uvicorn-python", default=sys.executable)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    servers = {
        "aiohttp": (sys.executable, AIOHTTP_SERVER),
        "uvicorn+starlette": (args.uvicorn_python, UVICORN_SERVER),
    }
    results: dict[str, dict[str, list[float]]] = {name: {"p50_ms_c1": [], "rps_c32": []} for name in servers}
    for _ in range(args.rounds):
        for name, (python, code) in servers.items():
            port = free_port()
            proc = await asyncio.create_subprocess_exec(python, "-c", code, str(port))
            try:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                await wait_up(url)
                _, p50 = await drive(url, 1, args.seconds)
                rps, _ = await drive(url, 32, args.seconds)
                results[name]["p50_ms_c1"].append(p50)
                results[name]["rps_c32"].append(rps)
            finally:
                proc.terminate()
                await proc.wait()
    summary = {name: {k: round(statistics.median(v), 3) for k, v in r.items()} for name, r in results.items()}
    a, u = summary["aiohttp"], summary["uvicorn+starlette"]
    summary["ratio aiohttp/uvicorn"] = {
        "p50_ms_c1": round(a["p50_ms_c1"] / u["p50_ms_c1"], 3),
        "rps_c32": round(a["rps_c32"] / u["rps_c32"], 3),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
