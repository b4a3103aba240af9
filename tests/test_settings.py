"""Config loading: env interpolation, validation messages that name the field, exact prices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router_service.settings import ConfigError, interpolate_env, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent


def minimal(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1/", "api_key": "k"}},
        "models": [{"name": "m", "provider": "p", "price_per_mtok": {"input": "0.15", "output": "0.6"}}],
    }
    config.update(overrides)
    return config


def test_example_configs_load() -> None:
    example = load_config(REPO / "config" / "example.yaml", env={})
    assert "openai/gpt-4o-mini" in example.catalog.by_key
    embedded = load_config(
        REPO / "config" / "embedded.yaml",
        env={
            "SIM_FAST_URL": "http://127.0.0.1:8001/v1",
            "SIM_CHEAP_URL": "http://127.0.0.1:8002/v1",
            "SIM_PREMIUM_URL": "http://127.0.0.1:8003/v1",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        },
    )
    assert set(embedded.endpoints) == {"sim-fast", "sim-cheap", "sim-premium"}


def test_prices_convert_exactly_to_nanos() -> None:
    config = parse_config(minimal())
    price = config.catalog.by_key["p/m"].price
    assert (price.input_nanos_per_mtok, price.output_nanos_per_mtok) == (150_000_000, 600_000_000)
    assert price.cached_input_nanos_per_mtok == 150_000_000  # defaults to the input price


def test_base_url_trailing_slash_is_removed_and_key_is_kept_out_of_repr() -> None:
    endpoint = parse_config(minimal()).endpoints["p"]
    assert endpoint.base_url == "http://127.0.0.1:1/v1"
    assert endpoint.api_key == "k" and "k'" not in repr(endpoint)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"models": [{"name": "m", "provider": "nope", "price_per_mtok": {"input": "1", "output": "1"}}]},
            "models[0].provider: unknown provider 'nope'",
        ),
        (
            {"models": [{"name": "m", "provider": "p", "price_per_mtok": {"input": "1.5e3", "output": "1"}}]},
            "models[0].price_per_mtok.input",
        ),
        ({"aliases": {"fast": ["ghost"]}}, "aliases.fast: unknown model 'ghost'"),
        ({"policies": {"default": {"models": ["ghost"]}}}, "policies.default.models: unknown model 'ghost'"),
        ({"routing": {"default_policy": "cheap"}}, "routing.default_policy: unknown policy 'cheap'"),
        ({"server": {"listen": "nowhere"}}, "server.listen"),
        ({"http": {"http2": True}}, "http2: true requires transport: httpx"),
        ({"providers": {"p": {"kind": "cohere", "base_url": "http://x"}}}, "providers.p.kind"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_config_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(minimal(**change))
    assert message in str(caught.value)


def test_validation_errors_never_echo_secrets() -> None:
    bad = minimal(providers={"p": {"kind": "openai", "base_url": "ftp://x", "api_key": "sk-topsecret"}})
    with pytest.raises(ConfigError) as caught:
        parse_config(bad)
    assert "sk-topsecret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("raw", "env", "expected"),
    [
        ("${KEY}", {"KEY": "v"}, "v"),
        ("a-${KEY}-b", {"KEY": "v"}, "a-v-b"),
        ("${MISSING:-fallback}", {}, "fallback"),
        ("${MISSING:-}", {}, ""),
        ("plain", {}, "plain"),
    ],
)
def test_env_interpolation(raw: str, env: dict[str, str], expected: str) -> None:
    assert interpolate_env({"x": [raw]}, env) == {"x": [expected]}


def test_missing_env_var_names_the_field() -> None:
    with pytest.raises(
        ConfigError, match=r"providers\.p\.api_key: environment variable OPENAI_KEY is not set"
    ):
        interpolate_env({"providers": {"p": {"api_key": "${OPENAI_KEY}"}}}, {})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_policies_resilience_and_classifier_map_to_runtime_objects() -> None:
    config = parse_config(
        minimal(
            policies={
                "default": {
                    "models": ["m"],
                    "strategy": ["quality", "cost"],
                    "params": {"cost_tolerance": 0.2},
                    "max_cost_usd": "0.01",
                    "min_sensitivity": "restricted",
                    "hedge": {"enabled": True, "delay_s": 0.5},
                }
            },
            resilience={"breaker": {"allowed_fails": 5}, "error_classes": {"timeout": {"retry": False}}},
            classifier={"keywords": {"code": ["kotlin"]}},
        )
    )
    policy = config.policies["default"]
    assert (policy.strategy, policy.params.cost_tolerance, policy.max_cost_nanos) == (
        "quality>cost",
        0.2,
        10_000_000,
    )
    assert policy.hedge.enabled and policy.hedge.delay_s == 0.5
    assert config.live_state.breaker.allowed_fails == 5
    from router_service.errors import ErrorClass

    assert config.live_state.error_policy.rule(ErrorClass.TIMEOUT).retry is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policies": {"default": {"strategy": "fastest"}}}, "policies.default"),
        ({"resilience": {"error_classes": {"tiemout": {"retry": False}}}}, "resilience.error_classes"),
        ({"resilience": {"breaker": {"allowed_fails": 0}}}, "resilience.breaker.allowed_fails"),
    ],
)
def test_invalid_routing_config_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(minimal(**change))


@pytest.mark.parametrize(("events", "durable"), [({}, True), ({"durable": False}, False)])
def test_events_are_durable_unless_configured_off(events: dict[str, Any], durable: bool) -> None:
    config = parse_config(minimal(events={"bootstrap_servers": "127.0.0.1:9092", **events}))
    assert config.events is not None and config.events.durable is durable


def test_the_forwarder_setting_is_gone() -> None:
    with pytest.raises(ConfigError, match=r"events\.forwarder"):
        parse_config(minimal(events={"bootstrap_servers": "127.0.0.1:9092", "forwarder": True}))


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
        ({"exporter": "jaeger"}, "tracing.exporter"),
        ({"export_timeout_s": 0}, "tracing.export_timeout_s"),
        ({"enabeld": True}, "tracing.enabeld"),
    ],
)
def test_invalid_tracing_config_names_the_field(tracing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(minimal(tracing=tracing))


def test_tracing_config_is_carried_as_written() -> None:
    tracing = {"enabled": True, "endpoint": "http://otel:4318/v1/traces", "sample_ratio": 0.25}
    config = parse_config(minimal(tracing=tracing)).tracing
    assert (config.enabled, config.endpoint, config.sample_ratio, config.exporter) == (
        True,
        "http://otel:4318/v1/traces",
        0.25,
        "otlp",
    )
