"""The `providers:` and `models:` config sections (pydantic, at the edge), and USD amounts.

Every field is documented with its default in config/example.yaml; `settings.py` turns them into
the Catalog (catalog.py) and the provider endpoints. Prices are decimal strings (quoted, so YAML
never makes them floats), converted exactly to integer nano-USD.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from router_service.catalog import NANOS_PER_USD
from router_service.providers.url_safety import is_cleartext_remote
from router_service.schema_base import StrictModel

# A non-negative USD amount with at most 9 decimals (whole nano-USD).
_USD_DECIMAL_RE = re.compile(r"^\d+(\.\d{1,9})?$")


def checked_usd(value: str | None, rule: str) -> str | None:
    """`value` if it is None or a USD decimal string (prices, policies' cost caps), else
    ValueError("must be " + rule)."""
    if value is not None and not _USD_DECIMAL_RE.match(value):
        raise ValueError(f"must be {rule}")
    return value


def usd_to_nanos(value: str) -> int:
    """Exact conversion of a decimal USD string ("0.15") to integer nano-USD."""
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    return int(amount * NANOS_PER_USD)


class ProviderConfig(StrictModel):
    kind: Literal["openai", "anthropic", "gemini"]
    base_url: str
    api_key: SecretStr = SecretStr("")
    headers: dict[str, str] = {}
    options: dict[str, str] = {}
    # Plain http to a host that is not loopback sends the API key in clear: refused unless this is
    # set (then the router logs a warning at start), e.g. for simulators on a private network.
    allow_insecure: bool = False

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_key_in_clear(self) -> ProviderConfig:
        if is_cleartext_remote(self.base_url) and not self.allow_insecure:
            raise PydanticCustomError(
                "insecure_base_url",
                "base_url: plain http to a non-loopback host would send the API key in clear; "
                "use https or set allow_insecure: true",
            )
        return self


class PriceConfig(StrictModel):
    """USD per million tokens, as decimal strings (quoted, so YAML never makes them floats)."""

    input: str
    output: str
    cached_input: str | None = None  # defaults to the input price

    @field_validator("input", "output", "cached_input")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        return checked_usd(value, "a non-negative decimal string with at most 9 decimals, e.g. '0.15'")


class ModelConfig(StrictModel):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:-]+$")]
    provider: str
    upstream_model: str = ""  # defaults to name
    price_per_mtok: PriceConfig
    context_window: Annotated[int, Field(ge=1)] = 128_000
    max_output_tokens: Annotated[int, Field(ge=1)] = 4096
    capabilities: list[Literal["tools", "json", "streaming", "vision"]] = ["streaming"]
    max_sensitivity: Literal["public", "internal", "restricted"] = "internal"
    region: str = ""
    quality: dict[Literal["chat", "retrieval", "creative", "reasoning", "extraction", "code"], float] = {}
    # The prior for tasks `quality` does not list. Unset: the mean of the listed priors; with no
    # priors at all the quality is unknown (ranks as 0.5, never excluded by a floor).
    default_quality: Annotated[float | None, Field(ge=0, le=1)] = None

    @field_validator("quality")
    @classmethod
    def _unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for task, score in value.items():
            if not 0 <= score <= 1:
                raise ValueError(f"quality.{task} must be in [0, 1]")
        return value
