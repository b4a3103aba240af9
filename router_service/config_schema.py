"""The config file's schema: pydantic models with extra="forbid", validated once at start.

Every field is documented with its default in config/example.yaml. `settings.py` loads the file
and converts these models into the frozen runtime objects the request path uses.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from router_service.cache.schema import CacheConfig
from router_service.catalog import NANOS_PER_USD
from router_service.keystore.schema import IdentityConfig
from router_service.limits.schema import LimitsConfig
from router_service.providers.url_safety import is_cleartext_remote
from router_service.quality_learning.schema import LearningConfig
from router_service.telemetry.pii import DEFAULT_PII
from router_service.telemetry.publisher_config import DEFAULT_LINGER_MS, DEFAULT_TOPIC


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    """TLS for the gRPC server; with `client_ca_file`, mTLS (client certificates verified)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    # true: the handshake fails without a client certificate the CA verifies. false: none is asked
    # for (TLS only; callers authenticate with keys): gRPC Python cannot verify optional ones.
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _ca_for_required(self) -> TlsConfig:
        if self.require_client_cert and not self.client_ca_file:
            raise ValueError("require_client_cert needs client_ca_file")
        return self


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:50051")
    return value


class OpenAIHttpConfig(_Strict):
    """The OpenAI-compatible HTTP door (router_service/openai_door/): same process, engine, keys and
    events as gRPC, on its own port. Plaintext HTTP/1.1: keep it on loopback or behind a TLS proxy."""

    listen: str = "127.0.0.1:8080"
    # A larger body is answered 413 before it is read whole (as gRPC's max_receive_message_bytes).
    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    # An idle keep-alive connection is closed after this long.
    keepalive_timeout_s: Annotated[float, Field(gt=0)] = 75.0

    @field_validator("listen")
    @classmethod
    def _listen_host_port(cls, value: str) -> str:
        return _host_port(value)


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
    # Move everything allocated at start (config, catalog, generated classes, clients) out of the
    # cyclic GC's reach, so each collection scans only request-time objects (gc.freeze()).
    gc_freeze_after_start: bool = True
    tls: TlsConfig | None = None  # None: plaintext (fine on loopback; use TLS beyond it)
    # gRPC server reflection (grpcurl without .proto files). It answers without a key, so off in
    # production (deploy/): callers build from the published protos/ instead.
    reflection: bool = True
    # The OpenAI-compatible HTTP endpoint beside gRPC; None (the default): not served.
    openai_http: OpenAIHttpConfig | None = None

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


class TracingConfig(_Strict):
    """OpenTelemetry traces (README "Tracing"): a SERVER span per call, a CLIENT span per upstream
    attempt with the GenAI semantic conventions. Off by default: no tracing code on the call path."""

    enabled: bool = False
    exporter: Literal["otlp", "console"] = "otlp"  # otlp: OTLP/HTTP protobuf; console: stdout (debugging)
    # OTLP/HTTP traces URL; empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT,
    # else http://localhost:4318/v1/traces (the exporter's own defaults).
    endpoint: str = ""
    # One export's deadline, retries included. It also bounds what an unreachable collector adds
    # to shutdown (the last batch is exported then): about twice this at most.
    export_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # Share of new traces sampled; a caller's sampled/unsampled decision (traceparent) is kept.
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    service_name: str = "llm-router"


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
    # Bounds on one attempt's answer (providers/limits.py): an answer over them is a bad_response
    # attempt, which falls back, never an unbounded read. Sized for the largest real completion, a
    # 128k-output-token answer (~2 MB of JSON unary; a stream repeats its envelope per token).
    max_response_bytes: Annotated[int, Field(ge=1024)] = 16 << 20
    max_stream_line_bytes: Annotated[int, Field(ge=1024)] = 1 << 20  # one SSE line or event
    max_stream_bytes: Annotated[int, Field(ge=1024)] = 128 << 20  # one stream, all events
    max_error_body_bytes: Annotated[int, Field(ge=256)] = 16 << 10  # prefix of a non-2xx body read

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


class KafkaSecurityConfig(_Strict):
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None


# The names of telemetry/pii.py's PII_PATTERNS (a test keeps the two equal).
PiiName = Literal["email", "card_number", "phone", "phone_national", "iban", "us_ssn", "uk_nino"]


class EventsConfig(_Strict):
    """Telemetry events to Kafka. Empty bootstrap_servers: no events (metrics still work)."""

    bootstrap_servers: str = ""
    topic: Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")] = DEFAULT_TOPIC
    encoding: Literal["json", "protobuf"] = "json"
    # zstd: measured cheapest per event here (bench/event_publisher.py), and Kafka-native since 2.1.
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    queue_max: Annotated[int, Field(ge=1)] = 10_000
    # How long events gather before one send: longer rounds cost the router less CPU per event,
    # and events reach Kafka up to this much later (measured in PublisherConfig.linger_ms).
    linger_ms: Annotated[int, Field(ge=0, le=10_000)] = DEFAULT_LINGER_MS
    spool_dir: str = "var/spool/events"
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    # Every event written to the spool before its call answers (a write-ahead log, trimmed as the
    # broker acks): a killed router replays them at its next start (PublisherConfig.durable).
    durable: bool = True
    # Kafka's idempotent producer; the embedded Tansu broker does not support it (see up).
    enable_idempotence: bool = True
    include_content: bool = False  # prompts and answers in completion events (redacted)
    # Built-in PII patterns (telemetry/pii.py) redacted from content, caller tags and error
    # messages, on top of the secret shapes (always); all by default, list fewer to turn some off.
    redact_pii: list[PiiName] = list(DEFAULT_PII)  # type: ignore[arg-type]
    redact_patterns: list[str] = []  # extra regexes, applied after the built-in ones
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


_TOPIC = Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{0,249}$")]


class FleetSettings(_Strict):
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


class RequestsSettings(_Strict):
    """Caller request ids make retries idempotent, per router process (router_service/
    request_ledger.py): a Complete/Stream retried with the same id and request within the window
    gets the first answer back, or waits for the call still running; only successes are kept."""

    idempotency_window_s: Annotated[float, Field(gt=0)] = 600.0  # from when the answer was stored
    idempotency_max_entries: Annotated[int, Field(ge=1)] = 20_000  # least recently used evicted first
    # Serialized answers plus ~40 bytes per message and ~200 per entry; a larger answer is not kept.
    idempotency_max_bytes: Annotated[int, Field(ge=0)] = 64 << 20


class FeedbackSettings(_Strict):
    """Feedback must name a request this router served (successful or failed) within the window."""

    # false: accept any valid id (several replicas until the ledger is shared: the replica that
    # gets the feedback may not be the one that served it; the quality consumer drops, and counts,
    # feedback it cannot attribute).
    require_known_request: bool = True
    window_s: Annotated[float, Field(gt=0)] = 86_400.0  # from when the request arrived
    # Ids kept (~200 bytes each), oldest dropped first: size it as requests per second x window_s.
    max_entries: Annotated[int, Field(ge=1)] = 200_000


class AuthConfig(_Strict):
    """Caller identity (README "Keys and access"). `off` (the default) attributes and restricts
    nothing and logs a warning when the server listens beyond loopback; deploy/ runs `required`."""

    mode: Literal["required", "optional", "off"] = "off"
    keys_file: str = ""  # YAML of key definitions (hashes only), hot-reloaded; see `routerctl keys`
    # A Redis every replica shares (redis://[:password@]host:port/db); wins over keys_file.
    redis_url: SecretStr = SecretStr("")
    redis_prefix: str = "llmrouter:"
    key_cache_ttl_s: Annotated[float, Field(ge=0, le=300)] = 5.0  # Redis records cached in process
    keys_file_poll_s: Annotated[float, Field(ge=0, le=300)] = 2.0  # 0: reload on SIGHUP only
    # `optional` mode: the identity of callers that present no credentials.
    anonymous: IdentityConfig = IdentityConfig(scopes=["complete", "route", "stream"])
    # mTLS: client certificate identity (URI SAN, else DNS SAN, else CN) -> identity.
    certificate_identities: dict[str, IdentityConfig] = {}

    @model_validator(mode="after")
    def _store_for_keys(self) -> AuthConfig:
        has_store = bool(self.keys_file or self.redis_url.get_secret_value())
        if self.mode != "off" and not has_store and not self.certificate_identities:
            raise ValueError(
                f"auth.mode {self.mode} needs auth.keys_file, auth.redis_url or certificate_identities"
            )
        return self


class FileConfig(_Strict):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    http: HttpConfig = HttpConfig()
    routing: RoutingConfig = RoutingConfig()
    events: EventsConfig = EventsConfig()
    fleet: FleetSettings = FleetSettings()
    resilience: ResilienceConfig = ResilienceConfig()
    classifier: ClassifierSettings = ClassifierSettings()
    requests: RequestsSettings = RequestsSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    limits: LimitsConfig = LimitsConfig()  # budgets and rate limits (router_service/limits/)
    cache: CacheConfig = CacheConfig()  # the response cache (router_service/cache/); off by default
    # The quality learner's settings (router_service/quality_learning/): used when a policy's
    # strategy uses `learned`, else nothing is built.
    learning: LearningConfig = LearningConfig()
    providers: dict[str, ProviderConfig]
    models: list[ModelConfig]
    aliases: dict[str, list[str]] = {}
    policies: dict[str, PolicyConfig] = {"default": PolicyConfig()}

    @model_validator(mode="after")
    def _references(self) -> FileConfig:
        problems: list[str] = []
        model_names = {m.name for m in self.models}
        seen: set[tuple[str, str]] = set()
        # Deployment keys are "<provider>/<model>": a "/" in a provider name would make them ambiguous.
        problems += [
            f"providers.{name}: a provider name cannot contain '/'" for name in self.providers if "/" in name
        ]
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
        tls = self.server.tls
        if self.auth.certificate_identities and (tls is None or not tls.require_client_cert):
            # gRPC Python verifies client certificates only when it requires them; without
            # that it does not ask for one, and no certificate could be mapped.
            problems.append("auth.certificate_identities: needs server.tls with require_client_cert: true")
        problems += self.limits.policy_problems(self.policies)
        problems += self.cache.policy_problems(self.policies)
        if self.routing.default_policy not in self.policies:
            problems.append(f"routing.default_policy: unknown policy {self.routing.default_policy!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
