"""Runtime control for fault drills: swap profiles live and read or reset the counters.

    POST /admin/profile      {"model": "<name>" | "*", "profile": {...partial fields...}}
                             {"model": "<name>" | "*", "reset": true}   back to the startup config
    GET  /admin/stats        counters per model (see stats.py)
    POST /admin/stats/reset  zero the counters

"*" applies the partial profile to the default and to every configured model, so "all models
start failing" is one call. A partial profile may name a `preset` to start from.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from router_service.sim import wire
from router_service.sim.completions import JSON, bad_request
from router_service.sim.config import SimConfigError, apply_profile_update
from router_service.sim.profile import ProfileTable
from router_service.sim.stats import SimStats

ALL_MODELS = "*"


class AdminHandlers:
    def __init__(self, profiles: ProfileTable, stats: SimStats) -> None:
        self._profiles = profiles
        self._stats = stats

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/admin/profile", self.set_profile),
            web.get("/admin/stats", self.get_stats),
            web.post("/admin/stats/reset", self.reset_stats),
        ]

    async def set_profile(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return bad_request("body must be JSON", None)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            return bad_request("'model' (a model name or \"*\") is required", "model")
        model: str = body["model"]
        try:
            if body.get("reset") is True:
                self._profiles.reset(None if model == ALL_MODELS else model)
            else:
                self._update(model, body.get("profile"))
        except SimConfigError as exc:
            return bad_request(str(exc), "profile")
        return web.Response(body=wire.dumps(self._describe(model)), content_type=JSON)

    def _update(self, model: str, partial: object) -> None:
        """Validate against every profile first, so a failing update changes nothing."""
        if partial is None:
            raise SimConfigError("profile: 'profile' (an object of profile fields) is required")
        if model != ALL_MODELS:
            self._profiles.set_model(model, apply_profile_update(partial, self._profiles.get(model)))
            return
        default = apply_profile_update(partial, self._profiles.default)
        models = [(name, apply_profile_update(partial, p)) for name, p in self._profiles.items()]
        self._profiles.set_default(default)
        for name, profile in models:
            self._profiles.set_model(name, profile)

    def _describe(self, model: str) -> dict[str, Any]:
        if model == ALL_MODELS:
            return {
                "model": model,
                "default": self._profiles.default.to_dict(),
                "models": {name: p.to_dict() for name, p in self._profiles.items()},
            }
        return {"model": model, "profile": self._profiles.get(model).to_dict()}

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=wire.dumps(self._stats.snapshot()), content_type=JSON)

    async def reset_stats(self, request: web.Request) -> web.Response:
        self._stats.reset()
        return web.Response(body=wire.dumps(self._stats.snapshot()), content_type=JSON)
