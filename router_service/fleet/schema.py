"""The `fleet:` config section (pydantic, at the edge); `settings.py` makes it a FleetConfig."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from router_service.schema_base import StrictModel

_TOPIC = Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{0,249}$")]


class FleetSettings(StrictModel):
    """Routing on the fleet view: the consumers' snapshot topics, read from the events cluster.
    Off when events are off. An empty topic name skips that topic. See router_service/fleet/."""

    enabled: bool = True
    health_topic: _TOPIC = "llmrouter.health.v1"
    quality_topic: _TOPIC = "llmrouter.quality.v1"
    costs_topic: _TOPIC = "llmrouter.costs.v1"
    stale_after_s: Annotated[float, Field(gt=0)] = 20.0
    refresh_interval_s: Annotated[float, Field(gt=0)] = 1.0
    min_attempts: Annotated[int, Field(ge=1)] = 10
    health_window_s: Annotated[float, Field(gt=0)] = 120.0
    demote_below: Annotated[float, Field(gt=0, le=1)] = 0.9
    floor_score: Annotated[float, Field(ge=0, lt=1)] = 0.5
    min_share: Annotated[float, Field(gt=0, le=1)] = 0.02
    min_feedback: Annotated[int, Field(ge=1)] = 5
    startup_wait_s: Annotated[float, Field(ge=0)] = 5.0  # serve once the snapshots are read; 0: at once

    @model_validator(mode="after")
    def _order(self) -> FleetSettings:
        if self.floor_score >= self.demote_below:
            raise ValueError("floor_score must be below demote_below")
        return self
