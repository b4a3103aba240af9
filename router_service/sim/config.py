"""Loading simulated-provider config from YAML (and partial profile updates from /admin/profile).

pydantic validates at this edge only (`extra="forbid"`), then everything becomes the frozen
dataclasses of `profile.py`. Every error names its path, e.g.
`sim config sim.yaml: models.gpt-4o.error_rate: Input should be less than or equal to 1`.

YAML shape (every profile field optional; a profile starts from its `preset`, else from the
resolved `default` for entries under `models`, else from the built-in defaults):

    seed: 42                       # optional; fixes the fault/latency draws
    default:
      preset: fast                 # one of instant, fast, cheap, premium
      error_rate: 0.01
    models:
      gpt-4o:
        preset: premium
      gpt-4o-mini:
        latency_ms_p50: 30
        quality: {code: 0.5}       # merged over the base profile's per-task quality
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router_service.domain import TaskType
from router_service.sim.presets import PRESETS
from router_service.sim.profile import SimConfig, SimProfile

_TASKS = frozenset(t.value for t in TaskType)
_Unit = Field(default=None, ge=0.0, le=1.0)
_NonNeg = Field(default=None, ge=0.0)


class SimConfigError(ValueError):
    """Invalid sim config or profile update; the message names the offending field."""


class ProfileSpec(BaseModel):
    """A partial SimProfile: unset fields keep the base profile's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str | None = None
    latency_ms_p50: float | None = _NonNeg
    latency_ms_p99: float | None = _NonNeg
    token_interval_ms: float | None = _NonNeg
    error_rate: float | None = _Unit
    rate_limit_rate: float | None = _Unit
    retry_after_s: float | None = _NonNeg
    hang_rate: float | None = _Unit
    cut_stream_rate: float | None = _Unit
    malformed_rate: float | None = _Unit
    quality: dict[str, float] | None = None
    default_quality: float | None = _Unit
    answer_tokens: int | None = Field(default=None, ge=1)
    cached_prompt_fraction: float | None = _Unit
    context_window: int | None = Field(default=None, ge=1)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(sorted(PRESETS))}")
        return value

    @field_validator("quality")
    @classmethod
    def _known_tasks(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for task, q in (value or {}).items():
            if task not in _TASKS:
                raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(_TASKS))}")
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quality of {task!r} must be in [0, 1], got {q}")
        return value

    def apply(self, base: SimProfile) -> SimProfile:
        """The profile this spec describes on top of `base` (or of its preset)."""
        start = PRESETS[self.preset] if self.preset else base
        changes: dict[str, Any] = self.model_dump(exclude_none=True, exclude={"preset"})
        if "quality" in changes:
            changes["quality"] = {**start.quality, **changes["quality"]}
        return dataclasses.replace(start, **changes)


class SimConfigSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int | None = None
    default: ProfileSpec = ProfileSpec()
    models: dict[str, ProfileSpec] = {}


def load_sim_config(path: str | Path) -> SimConfig:
    """Read and validate a sim config YAML file. Raises SimConfigError naming the file and field."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimConfigError(f"sim config {source}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SimConfigError(f"sim config {source}: invalid YAML: {exc}") from exc
    return sim_config_from_dict({} if data is None else data, source)


def sim_config_from_dict(data: object, source: str = "<dict>") -> SimConfig:
    try:
        spec = SimConfigSpec.model_validate(data)
    except ValidationError as exc:
        raise SimConfigError(f"sim config {source}: {_describe(exc)}") from exc
    default = _build(spec.default, SimProfile(), f"sim config {source}: default")
    models = {
        name: _build(entry, default, f"sim config {source}: models.{name}")
        for name, entry in spec.models.items()
    }
    return SimConfig(default=default, models=models, seed=spec.seed)


def apply_profile_update(data: object, base: SimProfile) -> SimProfile:
    """Validate a partial profile (JSON from /admin/profile) and apply it over `base`."""
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise SimConfigError(f"profile: {_describe(exc)}") from exc
    return _build(spec, base, "profile")


def _build(spec: ProfileSpec, base: SimProfile, where: str) -> SimProfile:
    """Cross-field rules (rates summing to <= 1, p99 >= p50) live in SimProfile; name the path."""
    try:
        return spec.apply(base)
    except ValueError as exc:
        raise SimConfigError(f"{where}: {exc}") from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
