"""The simulated OpenAI-compatible provider as a real HTTP server (aiohttp).

Entry points (what `router-service sim` and `router-service up` call):

    from router_service.sim.config import load_sim_config      # YAML -> SimConfig
    from router_service.sim.presets import preset_config       # "instant" | "fast" | "cheap" | "premium"
    from router_service.sim.server import SimServer, run_sim

    await run_sim(host="127.0.0.1", port=8001, config=preset_config("fast"))  # until cancelled/SIGTERM

    async with SimServer(preset_config("instant")) as sim:     # port 0: a free port
        base_url = sim.url                                     # "http://127.0.0.1:<port>/v1"

Routes: POST /v1/chat/completions (unary and `stream: true`), GET /v1/models, GET /healthz, and the
fault-drill admin routes of `admin.py`. Access logs are off: the sim is a benchmark baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from router_service.sim import wire
from router_service.sim.admin import AdminHandlers
from router_service.sim.completions import JSON, CompletionsHandler
from router_service.sim.profile import ProfileTable, SimConfig
from router_service.sim.stats import SimStats

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
# How long stop() lets in-flight responses (slow streams) finish before cancelling them.
SHUTDOWN_GRACE_S = 1.0
# Well above aiohttp's 1 MiB default, so an oversized prompt meets the context-window check
# (400 context_length_exceeded, as upstreams answer) instead of a 413.
MAX_BODY_BYTES = 32 * 1024 * 1024


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SimApp:
    """The aiohttp application and the live state its handlers share."""

    app: web.Application
    profiles: ProfileTable
    stats: SimStats
    completions: CompletionsHandler


def build_app(config: SimConfig) -> SimApp:
    profiles = ProfileTable(config)
    stats = SimStats()
    completions = CompletionsHandler(profiles, stats, random.Random(config.seed))

    async def list_models(request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "sim"}
            for name in profiles.model_names()
        ]
        return web.Response(body=wire.dumps({"object": "list", "data": data}), content_type=JSON)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=JSON)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.add_routes(
        [
            web.post("/v1/chat/completions", completions.handle),
            web.get("/v1/models", list_models),
            web.get("/healthz", healthz),
            *AdminHandlers(profiles, stats).routes(),
        ]
    )
    return SimApp(app, profiles, stats, completions)


class SimServer:
    """One simulated provider bound to host:port. Start once, stop any number of times."""

    def __init__(self, config: SimConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self._sim = build_app(config or SimConfig())
        self._host = host
        self._requested_port = port
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._state = _State.NEW

    async def start(self) -> int:
        """Bind and serve; returns the port (a free one when constructed with port 0)."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"SimServer cannot start from state {self._state.value}")
        # handler_cancellation: a hanging handler must end when its client disconnects.
        runner = web.AppRunner(
            self._sim.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        self._runner = runner
        self._state = _State.STARTED
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await self.stop()
            raise
        self._port = int(runner.addresses[0][1])
        return self._port

    async def stop(self) -> None:
        if self._state is _State.STARTED and self._runner is not None:
            runner, self._runner = self._runner, None
            self._sim.completions.release_hangs()
            await runner.cleanup()
        self._state = _State.STOPPED

    @property
    def profiles(self) -> ProfileTable:
        """Live profiles, for in-process drills (the same table /admin/profile edits)."""
        return self._sim.profiles

    @property
    def stats(self) -> SimStats:
        return self._sim.stats

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL in the form OpenAI clients expect (`base_url`)."""
        if self._state is not _State.STARTED:
            raise RuntimeError("SimServer is not running")
        return f"http://{self._host}:{self._port}/v1"

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def run_sim(host: str = DEFAULT_HOST, port: int = 0, config: SimConfig | None = None) -> None:
    """Serve until the task is cancelled (Ctrl-C under asyncio.run) or the process gets SIGTERM."""
    server = SimServer(config, host=host, port=port)
    bound = await server.start()
    log.info("simulated provider listening on %s", server.url)
    stop = asyncio.Event()
    with _on_sigterm(stop.set):
        try:
            await stop.wait()
        finally:
            await server.stop()
    log.info("simulated provider on port %d stopped", bound)


@contextlib.contextmanager
def _on_sigterm(callback: Callable[[], None]) -> Iterator[None]:
    """Route SIGTERM to `callback` while serving; skipped where the loop cannot own signals
    (not the main thread, Windows), in which case cancellation is the only way to stop."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, callback)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
