"""Typed configuration: one YAML file, validated by pydantic, converted once to frozen objects.

`load_config(path)` reads YAML, replaces `${VAR}` / `${VAR:-default}` in string values from the
environment (secrets stay out of the file), validates everything with messages that name the field
(`models[2].provider: unknown provider 'opnai'`), and returns a `RuntimeConfig` made of frozen
dataclasses. The request path never touches pydantic.

Every field is documented in `config/example.yaml`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from router_service.catalog import NANOS_PER_USD, Catalog, Deployment, Price
from router_service.domain import DataSensitivity, TaskType
from router_service.providers.base import ProviderEndpoint
from router_service.resilience.breaker import BreakerConfig
from router_service.resilience.error_policy import ErrorPolicy
from router_service.resilience.live_state import LiveStateConfig
from router_service.resilience.retry import RetryBudgetConfig, RetryConfig
from router_service.routing.classifier import ClassifierConfig, RuleClassifier
from router_service.routing.planner import DEFAULT_ENV, RoutingEnv
from router_service.routing.policy import HedgeConfig, Policy
from router_service.routing.strategies import StrategyParams
from router_service.telemetry.kafka_client import KafkaSecurity
from router_service.telemetry.publisher_config import DEFAULT_TOPIC, PublisherConfig
from router_service.telemetry.redaction import pii_patterns


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid. The message names every bad field."""


# --- schema (pydantic, edges only) ----------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    listen: str = "127.0.0.1:50051"
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    grace_period_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_receive_message_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    max_send_message_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    keepalive_time_s: Annotated[float, Field(gt=0)] = 60.0
    keepalive_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    # Clients may ping this often without data before the server sends GOAWAY(too_many_pings).
    min_client_ping_interval_s: Annotated[float, Field(gt=0)] = 10.0
    max_concurrent_rpcs: Annotated[int, Field(ge=1)] | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:50051")
        return value


class MetricsConfig(_Strict):
    # HOST:PORT for the Prometheus /metrics endpoint; empty disables it.
    listen: str = "127.0.0.1:9464"


class HttpConfig(_Strict):
    # "aiohttp": httpx API over the httpx-aiohttp transport (measured fastest here; see README).
    # "httpx": httpx's own transport (supports HTTP/2 with http2: true).
    transport: Literal["aiohttp", "httpx"] = "aiohttp"
    http2: bool = False
    max_connections: Annotated[int, Field(ge=1)] = 512
    max_keepalive_connections: Annotated[int, Field(ge=0)] = 128
    connect_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # Backstop only: the engine's attempt timeout is what normally ends a slow call.
    read_timeout_s: Annotated[float, Field(gt=0)] = 300.0

    @model_validator(mode="after")
    def _http2_needs_httpx(self) -> HttpConfig:
        if self.http2 and self.transport != "httpx":
            raise ValueError("http2: true requires transport: httpx")
        return self


class RoutingConfig(_Strict):
    default_policy: str = "default"
    # Upper bound for one upstream attempt; always cut to what is left of the caller's deadline.
    attempt_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # Deadline used when the caller sets none (gRPC has no default deadline).
    default_deadline_s: Annotated[float, Field(gt=0)] = 120.0
    # Streams: give up on an attempt that has sent no token within this time (still before
    # anything reached the caller, so it can fall back).
    first_token_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    # Streams: after the first token, an upstream silent for this long ends the stream as
    # interrupted (the caller already has text, so there is no fallback).
    stream_stall_timeout_s: Annotated[float, Field(gt=0)] = 30.0


class ProviderConfig(_Strict):
    kind: Literal["openai", "anthropic", "gemini"]
    base_url: str
    api_key: SecretStr = SecretStr("")
    headers: dict[str, str] = {}
    options: dict[str, str] = {}

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


_PRICE_RE = re.compile(r"^\d+(\.\d{1,9})?$")


def _usd_per_mtok_to_nanos(value: str) -> int:
    """Exact conversion of a decimal USD string ("0.15") to integer nano-USD."""
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {value!r}") from exc
    return int(amount * NANOS_PER_USD)


class PriceConfig(_Strict):
    """USD per million tokens, as decimal strings (quoted, so YAML never makes them floats)."""

    input: str
    output: str
    cached_input: str | None = None  # defaults to the input price

    @field_validator("input", "output", "cached_input")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        if value is not None and not _PRICE_RE.match(value):
            raise ValueError("must be a non-negative decimal string with at most 9 decimals, e.g. '0.15'")
        return value


class ModelConfig(_Strict):
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
    default_quality: Annotated[float, Field(ge=0, le=1)] = 0.5

    @field_validator("quality")
    @classmethod
    def _unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        for task, score in value.items():
            if not 0 <= score <= 1:
                raise ValueError(f"quality.{task} must be in [0, 1]")
        return value


class KafkaSecurityConfig(_Strict):
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None


class EventsConfig(_Strict):
    """Telemetry events to Kafka. Empty bootstrap_servers: no events (metrics still work)."""

    bootstrap_servers: str = ""
    topic: Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")] = DEFAULT_TOPIC
    encoding: Literal["json", "protobuf"] = "json"
    # zstd: measured cheapest per event here (bench/event_publisher.py), and Kafka-native since 2.1.
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    queue_max: Annotated[int, Field(ge=1)] = 10_000
    spool_dir: str = "var/spool/events"
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    # Kafka's idempotent producer; the embedded Tansu broker does not support it (see up).
    enable_idempotence: bool = True
    include_content: bool = False  # prompts and answers in completion events (redacted)
    redact_pii: list[Literal["email", "card_number"]] = []
    redact_patterns: list[str] = []  # extra regexes, applied with the built-in secret patterns
    # Dev and tests only: create the topic with this many partitions at start. Production topics
    # are created by operators (auto-create stays off).
    create_topic_partitions: Annotated[int, Field(ge=1)] | None = None
    security: KafkaSecurityConfig = KafkaSecurityConfig()

    @field_validator("redact_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return value


class HedgeSettings(_Strict):
    enabled: bool = False
    delay_s: Annotated[float, Field(gt=0)] | None = None  # None: the first choice's rolling P95
    min_delay_s: Annotated[float, Field(ge=0)] = 0.05
    max_delay_s: Annotated[float, Field(gt=0)] = 10.0
    cold_delay_s: Annotated[float, Field(gt=0)] = 2.0
    max_hedges: Annotated[int, Field(ge=0, le=3)] = 1


class StrategyParamsConfig(_Strict):
    cost_tolerance: Annotated[float, Field(ge=0)] = 0.10
    latency_tolerance: Annotated[float, Field(ge=0)] = 0.10
    quality_tolerance: Annotated[float, Field(ge=0)] = 0.02
    weights: dict[str, Annotated[float, Field(ge=0)]] = {}
    cold_start_p95_s: Annotated[float, Field(gt=0)] | None = None


class PolicyConfig(_Strict):
    models: list[str] = []
    # Composition of registry keys, "filter > score > tie-break", e.g. "quality>cost>round_robin",
    # or a YAML list. Keys: priority, round_robin, weighted, latency, cost, quality.
    strategy: str | list[str] = "priority"
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    params: StrategyParamsConfig = StrategyParamsConfig()
    max_cost_usd: str | None = None  # decimal string, per request
    min_quality: Annotated[float, Field(ge=0, le=1)] | None = None
    max_p95_s: Annotated[float, Field(gt=0)] | None = None
    min_sensitivity: Literal["public", "internal", "restricted"] | None = None
    regions: list[str] = []
    allowed_providers: list[str] = []
    denied_providers: list[str] = []
    hedge: HedgeSettings = HedgeSettings()

    @field_validator("max_cost_usd")
    @classmethod
    def _cost(cls, value: str | None) -> str | None:
        if value is not None and not _PRICE_RE.match(value):
            raise ValueError("must be a non-negative decimal string, e.g. '0.01'")
        return value


class BreakerSettings(_Strict):
    allowed_fails: Annotated[int, Field(ge=1)] = 3
    fail_window_s: Annotated[float, Field(gt=0)] = 60.0
    min_failure_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0
    cooldown_multiplier: Annotated[float, Field(ge=1)] = 2.0
    max_cooldown_s: Annotated[float, Field(gt=0)] = 600.0
    max_retry_after_s: Annotated[float, Field(gt=0)] = 300.0
    half_open_probes: Annotated[int, Field(ge=1)] = 1
    probe_successes: Annotated[int, Field(ge=1)] = 1
    probe_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    ramp_s: Annotated[float, Field(ge=0)] = 30.0
    ramp_start_fraction: Annotated[float, Field(gt=0, le=1)] = 0.1


class ResilienceConfig(_Strict):
    """Live state, breakers, retries. Defaults follow the field (LiteLLM/Envoy semantics)."""

    window_s: Annotated[float, Field(gt=0)] = 60.0  # rolling window of latency and error stats
    min_latency_samples: Annotated[int, Field(ge=1)] = 10
    breaker: BreakerSettings = BreakerSettings()
    # Per error class overrides: {timeout: {retry: false}, auth: {cooldown_s: 60}}; flags are
    # retry, counts_against_health, cooldown, fallback (none|next|larger_context), cooldown_s.
    error_classes: dict[str, dict[str, Any]] = {}
    max_retries: Annotated[int, Field(ge=0, le=5)] = 2  # per deployment, same request
    backoff_base_s: Annotated[float, Field(gt=0)] = 0.1
    backoff_max_s: Annotated[float, Field(gt=0)] = 5.0
    min_useful_attempt_s: Annotated[float, Field(gt=0)] = 0.05
    retry_budget_ratio: Annotated[float, Field(ge=0)] = 0.2  # retries+hedges per request, per provider
    retry_budget_min_per_s: Annotated[float, Field(ge=0)] = 1.0
    # An attempt still unanswered after this multiple of its deployment's recent P95 latency is
    # given up as a timeout (and counts against health) before attempt_timeout_s fires.
    stuck_after_p95_multiple: Annotated[float, Field(ge=1)] | None = 4.0
    stuck_min_s: Annotated[float, Field(gt=0)] = 1.0


class ClassifierSettings(_Strict):
    keywords: dict[Literal["retrieval", "creative", "reasoning", "extraction", "code"], list[str]] = {}
    replace_builtin: bool = False


class FileConfig(_Strict):
    server: ServerConfig = ServerConfig()
    metrics: MetricsConfig = MetricsConfig()
    http: HttpConfig = HttpConfig()
    routing: RoutingConfig = RoutingConfig()
    events: EventsConfig = EventsConfig()
    resilience: ResilienceConfig = ResilienceConfig()
    classifier: ClassifierSettings = ClassifierSettings()
    providers: dict[str, ProviderConfig]
    models: list[ModelConfig]
    aliases: dict[str, list[str]] = {}
    policies: dict[str, PolicyConfig] = {"default": PolicyConfig()}

    @model_validator(mode="after")
    def _references(self) -> FileConfig:
        problems: list[str] = []
        model_names = {m.name for m in self.models}
        seen: set[tuple[str, str]] = set()
        for i, m in enumerate(self.models):
            if m.provider not in self.providers:
                problems.append(f"models[{i}].provider: unknown provider {m.provider!r}")
            if (m.provider, m.name) in seen:
                problems.append(f"models[{i}]: duplicate model {m.name!r} for provider {m.provider!r}")
            seen.add((m.provider, m.name))
        for alias, names in self.aliases.items():
            problems += [f"aliases.{alias}: unknown model {n!r}" for n in names if n not in model_names]
            if not names:
                problems.append(f"aliases.{alias}: must list at least one model")
        for pname, policy in self.policies.items():
            problems += [
                f"policies.{pname}.models: unknown model {n!r}" for n in policy.models if n not in model_names
            ]
        if self.routing.default_policy not in self.policies:
            problems.append(f"routing.default_policy: unknown policy {self.routing.default_policy!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- runtime objects (frozen, plain) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    server: ServerConfig
    metrics: MetricsConfig
    http: HttpConfig
    routing: RoutingConfig
    endpoints: Mapping[str, ProviderEndpoint]
    catalog: Catalog
    policies: Mapping[str, Policy]
    live_state: LiveStateConfig = field(default_factory=LiveStateConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    retry_budget: RetryBudgetConfig = field(default_factory=RetryBudgetConfig)
    routing_env: RoutingEnv = DEFAULT_ENV
    stuck_after_p95_multiple: float | None = 4.0
    stuck_min_s: float = 1.0
    events: PublisherConfig | None = None  # None: events disabled
    create_topic_partitions: int | None = None
    source: str = ""  # path the config came from, for logs


# --- loading ----------------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set (use ${{{name}:-}} to allow empty)"
        )

    return _ENV_RE.sub(substitute, value)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> RuntimeConfig:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: top level must be a mapping")
    config = parse_config(interpolate_env(raw, os.environ if env is None else env))
    return RuntimeConfig(**{**_fields(config), "source": str(path)})


def parse_config(data: Mapping[str, Any]) -> RuntimeConfig:
    try:
        validated = FileConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None  # `from None`: the chained error may echo secrets
    try:
        return to_runtime(validated)
    except ValueError as exc:  # checks of the runtime objects (strategies, compression libs...)
        raise ConfigError(f"invalid config: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        lines.append(f"{where or '(top level)'}: {err['msg']}")
    return "invalid config:\n  " + "\n  ".join(lines)


def _fields(config: RuntimeConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in RuntimeConfig.__dataclass_fields__}


def to_runtime(cfg: FileConfig) -> RuntimeConfig:
    endpoints = {
        name: ProviderEndpoint(
            name=name,
            kind=p.kind,
            base_url=p.base_url,
            api_key=p.api_key.get_secret_value(),
            headers=MappingProxyType(dict(p.headers)),
            options=MappingProxyType(dict(p.options)),
        )
        for name, p in cfg.providers.items()
    }
    catalog = Catalog(
        deployments=tuple(_deployment(m) for m in cfg.models),
        aliases=MappingProxyType({k: tuple(v) for k, v in cfg.aliases.items()}),
    )
    policies = {name: _policy(name, p) for name, p in cfg.policies.items()}
    res = cfg.resilience
    return RuntimeConfig(
        server=cfg.server,
        metrics=cfg.metrics,
        http=cfg.http,
        routing=cfg.routing,
        endpoints=MappingProxyType(endpoints),
        catalog=catalog,
        policies=MappingProxyType(policies),
        live_state=_live_state(res),
        retry=RetryConfig(
            max_retries=res.max_retries,
            base_s=res.backoff_base_s,
            max_backoff_s=res.backoff_max_s,
            per_attempt_timeout_s=cfg.routing.attempt_timeout_s,
            min_useful_s=res.min_useful_attempt_s,
        ),
        retry_budget=RetryBudgetConfig(ratio=res.retry_budget_ratio, min_per_s=res.retry_budget_min_per_s),
        routing_env=_routing_env(cfg.classifier),
        stuck_after_p95_multiple=res.stuck_after_p95_multiple,
        stuck_min_s=res.stuck_min_s,
        events=_publisher_config(cfg.events),
        create_topic_partitions=cfg.events.create_topic_partitions,
    )


def _policy(name: str, p: PolicyConfig) -> Policy:
    strategy = ">".join(p.strategy) if isinstance(p.strategy, list) else p.strategy
    try:
        return Policy(
            name=name,
            models=tuple(p.models),
            strategy=strategy,
            max_attempts=p.max_attempts,
            params=StrategyParams(**p.params.model_dump()),
            max_cost_nanos=_usd_per_mtok_to_nanos(p.max_cost_usd) if p.max_cost_usd else None,
            min_quality=p.min_quality,
            max_p95_s=p.max_p95_s,
            min_sensitivity=DataSensitivity(p.min_sensitivity) if p.min_sensitivity else None,
            regions=frozenset(p.regions),
            allowed_providers=frozenset(p.allowed_providers),
            denied_providers=frozenset(p.denied_providers),
            hedge=HedgeConfig(**p.hedge.model_dump()),
        )
    except ValueError as exc:
        raise ValueError(f"policies.{name}: {exc}") from None


def _live_state(res: ResilienceConfig) -> LiveStateConfig:
    try:
        error_policy = ErrorPolicy.with_overrides(res.error_classes)
    except ValueError as exc:
        raise ValueError(f"resilience.error_classes: {exc}") from None
    return LiveStateConfig(
        window_s=res.window_s,
        min_latency_samples=res.min_latency_samples,
        breaker=BreakerConfig(**res.breaker.model_dump()),
        error_policy=error_policy,
    )


def _routing_env(c: ClassifierSettings) -> RoutingEnv:
    if not c.keywords and not c.replace_builtin:
        return DEFAULT_ENV
    keywords = {TaskType(task): tuple(words) for task, words in c.keywords.items()}
    config = ClassifierConfig(keywords=keywords, replace_builtin=c.replace_builtin)
    return RoutingEnv(classifier=RuleClassifier(config))


def _publisher_config(events: EventsConfig) -> PublisherConfig | None:
    if not events.bootstrap_servers:
        return None
    try:
        return _publisher(events)
    except ValueError as exc:
        raise ValueError(f"events: {exc}") from None


def _publisher(events: EventsConfig) -> PublisherConfig:
    sec = events.security
    password = sec.sasl_plain_password.get_secret_value() if sec.sasl_plain_password else None
    return PublisherConfig(
        bootstrap_servers=events.bootstrap_servers,
        topic=events.topic,
        encoding=events.encoding,
        compression_type=events.compression,
        queue_max=events.queue_max,
        spool_dir=events.spool_dir,
        spool_max_bytes=events.spool_max_bytes,
        enable_idempotence=events.enable_idempotence,
        include_content=events.include_content,
        redact_patterns=(*pii_patterns(events.redact_pii), *events.redact_patterns),
        security=KafkaSecurity(
            security_protocol=sec.security_protocol,
            sasl_mechanism=sec.sasl_mechanism,
            sasl_plain_username=sec.sasl_plain_username,
            sasl_plain_password=password,
            ssl_cafile=sec.ssl_cafile,
        ),
    )


def _deployment(m: ModelConfig) -> Deployment:
    price = m.price_per_mtok
    return Deployment(
        provider=m.provider,
        model=m.name,
        upstream_model=m.upstream_model or m.name,
        price=Price(
            input_nanos_per_mtok=_usd_per_mtok_to_nanos(price.input),
            output_nanos_per_mtok=_usd_per_mtok_to_nanos(price.output),
            cached_input_nanos_per_mtok=_usd_per_mtok_to_nanos(price.cached_input or price.input),
        ),
        context_window=m.context_window,
        max_output_tokens=m.max_output_tokens,
        capabilities=frozenset(m.capabilities),
        max_sensitivity=DataSensitivity(m.max_sensitivity),
        region=m.region,
        quality=MappingProxyType({TaskType(k): v for k, v in m.quality.items()}),
        default_quality=m.default_quality,
    )
