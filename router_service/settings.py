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
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import yaml
from pydantic import (
    ValidationError,
)

from router_service.cache.schema import CacheConfig
from router_service.catalog import Catalog, Deployment, Price
from router_service.catalog_schema import usd_to_nanos
from router_service.config_schema import (
    AuthConfig,
    ClassifierSettings,
    EventsConfig,
    FileConfig,
    FleetSettings,
    HttpConfig,
    MetricsConfig,
    ModelConfig,
    PolicyConfig,
    ResilienceConfig,
    RoutingConfig,
    ServerConfig,
    TracingConfig,
)
from router_service.domain import DataSensitivity, TaskType
from router_service.fleet.config import FleetConfig
from router_service.keystore.schema import error_path
from router_service.limits.schema import LimitsConfig
from router_service.providers.base import ProviderEndpoint
from router_service.providers.limits import ResponseLimits
from router_service.providers.usage import ModelLimits
from router_service.request_ledger import LedgerConfig
from router_service.resilience.breaker import BreakerConfig
from router_service.resilience.error_policy import ErrorPolicy
from router_service.resilience.live_state import LiveStateConfig
from router_service.resilience.retry import RetryBudgetConfig, RetryConfig
from router_service.routing.classifier import ClassifierConfig, ModelClassifier, RuleClassifier
from router_service.routing.learning import LearnerConfig
from router_service.routing.planner import DEFAULT_ENV, RoutingEnv
from router_service.routing.policy import HedgeConfig, Policy
from router_service.routing.strategies import StrategyParams
from router_service.routing.strategies.learned import learns
from router_service.telemetry.kafka_client import KafkaSecurity
from router_service.telemetry.publisher_config import PublisherConfig


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid. The message names every bad field."""


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
    fleet: FleetConfig | None = None  # None: route on local state only
    tracing: TracingConfig = field(default_factory=TracingConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)  # read at start only (app.py builds the gate)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)  # requests.* and feedback.* windows
    require_known_feedback: bool = True  # feedback.require_known_request
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # read at start only (app.py)
    cache: CacheConfig = field(default_factory=CacheConfig)  # the store at start; rules on reload too
    # The quality learner's settings, when a policy's strategy uses `learned`; None: no learner
    # (read at start only: app.py builds the learner and what feeds it).
    learning: LearnerConfig | None = None
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
        where = error_path(err["loc"])
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
            limits=_response_limits(cfg.http),
            models=_model_limits(cfg.models, name),
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
        fleet=_fleet_config(cfg.fleet) if cfg.events.bootstrap_servers else None,
        tracing=cfg.tracing,
        auth=cfg.auth,
        ledger=LedgerConfig(
            idempotency_window_s=cfg.requests.idempotency_window_s,
            idempotency_max_entries=cfg.requests.idempotency_max_entries,
            idempotency_max_bytes=cfg.requests.idempotency_max_bytes,
            feedback_window_s=cfg.feedback.window_s,
            feedback_max_entries=cfg.feedback.max_entries,
        ),
        require_known_feedback=cfg.feedback.require_known_request,
        limits=cfg.limits,
        cache=cfg.cache,
        learning=_learning(cfg, policies.values()),
    )


def _learning(cfg: FileConfig, policies: Iterable[Policy]) -> LearnerConfig | None:
    """The learner's settings when a policy routes with it (strategy `learned`), else None."""
    return cfg.learning.to_learner_config() if any(learns(p.strategy) for p in policies) else None


def _response_limits(http: HttpConfig) -> ResponseLimits:
    return ResponseLimits(
        max_response_bytes=http.max_response_bytes,
        max_stream_line_bytes=http.max_stream_line_bytes,
        max_stream_bytes=http.max_stream_bytes,
        max_error_body_bytes=http.max_error_body_bytes,
    )


def _model_limits(models: list[ModelConfig], provider: str) -> Mapping[str, ModelLimits]:
    """The catalog limits of the models `provider` serves, by upstream model name (the largest,
    when several catalog entries name the same upstream model): what bounds a plausible usage."""
    limits: dict[str, ModelLimits] = {}
    for m in models:
        if m.provider != provider:
            continue
        key = m.upstream_model or m.name
        seen = limits.get(key, ModelLimits(0, 0))
        limits[key] = ModelLimits(
            context_window=max(seen.context_window, m.context_window),
            max_output_tokens=max(seen.max_output_tokens, m.max_output_tokens),
        )
    return MappingProxyType(limits)


def _fleet_config(fleet: FleetSettings) -> FleetConfig | None:
    if not fleet.enabled:
        return None
    return FleetConfig(**fleet.model_dump(exclude={"enabled"}))


def _policy(name: str, p: PolicyConfig) -> Policy:
    strategy = ">".join(p.strategy) if isinstance(p.strategy, list) else p.strategy
    try:
        return Policy(
            name=name,
            models=tuple(p.models),
            strategy=strategy,
            max_attempts=p.max_attempts,
            params=StrategyParams(**p.params.model_dump()),
            max_cost_nanos=usd_to_nanos(p.max_cost_usd) if p.max_cost_usd else None,
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
    # replace_builtin: only the configured keywords decide (the rules); else the shipped model
    # decides and a configured keyword, when it occurs, wins over it.
    if c.replace_builtin:
        return RoutingEnv(classifier=RuleClassifier(config))
    return RoutingEnv(classifier=ModelClassifier(config))


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
        linger_ms=events.linger_ms,
        spool_dir=events.spool_dir,
        spool_max_bytes=events.spool_max_bytes,
        durable=events.durable,
        enable_idempotence=events.enable_idempotence,
        include_content=events.include_content,
        redact_pii=tuple(events.redact_pii),
        redact_patterns=tuple(events.redact_patterns),
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
            input_nanos_per_mtok=usd_to_nanos(price.input),
            output_nanos_per_mtok=usd_to_nanos(price.output),
            cached_input_nanos_per_mtok=usd_to_nanos(price.cached_input or price.input),
        ),
        context_window=m.context_window,
        max_output_tokens=m.max_output_tokens,
        capabilities=frozenset(m.capabilities),
        max_sensitivity=DataSensitivity(m.max_sensitivity),
        region=m.region,
        quality=MappingProxyType({TaskType(k): v for k, v in m.quality.items()}),
        default_quality=m.default_quality,
    )
