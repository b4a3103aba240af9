"""A provider base_url on plain http to a non-loopback host would send the API key in clear: config
refuses it (naming the field) unless the provider sets allow_insecure, and then every (re)build of
the adapters logs a warning. Loopback http (the simulators, a local vLLM) stays fine."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from router_service.providers.registry import build_adapters
from router_service.providers.url_safety import is_cleartext_remote
from router_service.settings import ConfigError, parse_config


@pytest.mark.parametrize(
    ("url", "cleartext_remote"),
    [
        ("http://api.example.com/v1", True),
        ("http://10.0.0.5:8000/v1", True),
        ("http://sim-fast:8001/v1", True),
        ("HTTP://Example.COM", True),
        ("http://[2001:db8::1]:80/", True),
        ("http://127.0.0.1:8000/v1", False),
        ("http://127.9.8.7/", False),
        ("http://localhost:8001/v1", False),
        ("http://LOCALHOST./v1", False),
        ("http://sims.localhost:8001", False),
        ("http://[::1]:8001/v1", False),
        ("https://api.openai.com/v1", False),
        ("https://10.0.0.5/v1", False),
    ],
)
def test_which_urls_carry_the_key_in_clear(url: str, cleartext_remote: bool) -> None:
    assert is_cleartext_remote(url) is cleartext_remote


def config(**provider: Any) -> dict[str, Any]:
    return {
        "providers": {"openai": {"kind": "openai", "api_key": "sk-secret-value", **provider}},
        "models": [{"name": "m", "provider": "openai", "price_per_mtok": {"input": "1", "output": "1"}}],
    }


def test_plain_http_to_a_remote_host_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(base_url="http://api.openai.com/v1"))
    message = str(caught.value)
    assert (
        "providers.openai: base_url: plain http to a non-loopback host would send the API key in clear; "
        "use https or set allow_insecure: true"
    ) in message
    assert "sk-secret-value" not in message


@pytest.mark.parametrize(
    "url", ["https://api.openai.com/v1", "http://127.0.0.1:8000/v1", "http://localhost:1"]
)
def test_https_and_loopback_are_accepted(url: str) -> None:
    assert parse_config(config(base_url=url)).endpoints["openai"].base_url == url.rstrip("/")


async def test_allow_insecure_accepts_it_and_warns_at_every_build(caplog: pytest.LogCaptureFixture) -> None:
    runtime = parse_config(config(base_url="http://sim-fast:8001/v1", allow_insecure=True))
    async with httpx.AsyncClient() as client:
        with caplog.at_level(logging.WARNING, logger="router_service.providers.registry"):
            build_adapters(runtime.endpoints, client)
            build_adapters(runtime.endpoints, client)
    warnings = [r.getMessage() for r in caplog.records if "in clear" in r.getMessage()]
    assert len(warnings) == 2 and "provider openai" in warnings[0]
    assert "sk-secret-value" not in caplog.text


async def test_secure_endpoints_build_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    runtime = parse_config(config(base_url="https://api.openai.com/v1", allow_insecure=True))
    async with httpx.AsyncClient() as client:
        with caplog.at_level(logging.WARNING):
            build_adapters(runtime.endpoints, client)
    assert "in clear" not in caplog.text
