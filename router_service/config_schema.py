"""The config file's schema: pydantic models with extra="forbid", validated once at start.

Every field is documented with its default in config/example.yaml. `settings.py` loads the file
and converts these models into the frozen runtime objects the request path uses.

This module is the root (`FileConfig`: every section and the checks across them) and holds the
sections of the process's own edges (`server:`, `http:`, `auth:`, `requests:`, `feedback:`).
The other sections live with their area: catalog_schema.py (providers, models), routing_schema.py
(routing, policies, resilience, classifier), telemetry/schema.py (metrics, tracing, events),
fleet/schema.py, and the limits, cache, keystore and quality_learning packages' schema.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from router_service.cache.schema import CacheConfig
from router_service.catalog_schema import ModelConfig, PriceConfig, ProviderConfig
from router_service.fleet.schema import FleetSettings
from router_service.keystore.schema import IdentityConfig
from router_service.limits.schema import LimitsConfig
from router_service.quality_learning.schema import LearningConfig
from router_service.routing_schema import (
    BreakerSettings,
    ClassifierSettings,
    HedgeSettings,
    PolicyConfig,
    ResilienceConfig,
    RoutingConfig,
    StrategyParamsConfig,
)
from router_service.schema_base import StrictModel
from router_service.telemetry.schema import (
    EventsConfig,
    KafkaSecurityConfig,
    MetricsConfig,
    PiiName,
    TracingConfig,
)

# Every section's model, wherever it is defined, is importable from here (the schema's one door).
__all__ = [
    "AuthConfig",
    "BreakerSettings",
    "ClassifierSettings",
    "EventsConfig",
    "FeedbackSettings",
    "FileConfig",
    "FleetSettings",
    "HedgeSettings",
    "HttpConfig",
    "KafkaSecurityConfig",
    "MetricsConfig",
    "ModelConfig",
    "OpenAIHttpConfig",
    "PiiName",
    "PolicyConfig",
    "PriceConfig",
    "ProviderConfig",
    "RequestsSettings",
    "ResilienceConfig",
    "RoutingConfig",
    "ServerConfig",
    "StrategyParamsConfig",
    "TlsConfig",
    "TracingConfig",
]


class TlsConfig(StrictModel):
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


class OpenAIHttpConfig(StrictModel):
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


class ServerConfig(StrictModel):
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
    def _listen_host_port(cls, value: str) -> str:
        return _host_port(value)


class HttpConfig(StrictModel):
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


class RequestsSettings(StrictModel):
    """Caller request ids make retries idempotent, per router process (router_service/
    request_ledger.py): a Complete/Stream retried with the same id and request within the window
    gets the first answer back, or waits for the call still running; only successes are kept."""

    idempotency_window_s: Annotated[float, Field(gt=0)] = 600.0  # from when the answer was stored
    idempotency_max_entries: Annotated[int, Field(ge=1)] = 20_000  # least recently used evicted first
    # Serialized answers plus ~40 bytes per message and ~200 per entry; a larger answer is not kept.
    idempotency_max_bytes: Annotated[int, Field(ge=0)] = 64 << 20


class FeedbackSettings(StrictModel):
    """Feedback must name a request this router served (successful or failed) within the window."""

    # false: accept any valid id (several replicas until the ledger is shared: the replica that
    # gets the feedback may not be the one that served it; the quality consumer drops, and counts,
    # feedback it cannot attribute).
    require_known_request: bool = True
    window_s: Annotated[float, Field(gt=0)] = 86_400.0  # from when the request arrived
    # Ids kept (~200 bytes each), oldest dropped first: size it as requests per second x window_s.
    max_entries: Annotated[int, Field(ge=1)] = 200_000


class AuthConfig(StrictModel):
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


class FileConfig(StrictModel):
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
