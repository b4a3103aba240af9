"""The base of the config file's section models (config_schema.py and the *_schema modules)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo never silently means the default); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
