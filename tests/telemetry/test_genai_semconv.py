"""gen_ai.provider.name and server.* attributes from a configured provider (pure)."""

from __future__ import annotations

import pytest

from router_service.providers.base import ProviderEndpoint
from router_service.telemetry.genai_semconv import provider_name, server_attributes


@pytest.mark.parametrize(
    ("name", "kind", "base_url", "options", "expected"),
    [
        ("openai", "openai", "https://api.openai.com/v1", {}, "openai"),
        ("my-openai", "openai", "https://api.openai.com/v1", {}, "openai"),  # the host decides, not our name
        ("azure", "openai", "https://x.openai.azure.com/openai", {"auth": "azure"}, "azure.ai.openai"),
        ("mistral", "openai", "https://api.mistral.ai/v1", {}, "mistral_ai"),
        ("deepseek", "openai", "https://api.deepseek.com", {}, "deepseek"),
        ("groq", "openai", "https://api.groq.com/openai/v1", {}, "groq"),
        ("local-vllm", "openai", "http://10.0.0.5:8000/v1", {}, "local-vllm"),  # custom: our name
        ("claude", "anthropic", "https://api.anthropic.com", {}, "anthropic"),
        ("google", "gemini", "https://generativelanguage.googleapis.com", {}, "gcp.gemini"),
    ],
)
def test_provider_name_is_the_well_known_value_or_ours(
    name: str, kind: str, base_url: str, options: dict[str, str], expected: str
) -> None:
    assert provider_name(ProviderEndpoint(name, kind, base_url, options=options)) == expected


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.openai.com/v1", {"server.address": "api.openai.com", "server.port": 443}),
        ("http://127.0.0.1:8000/v1", {"server.address": "127.0.0.1", "server.port": 8000}),
        ("http://vllm.internal/v1", {"server.address": "vllm.internal", "server.port": 80}),
        ("not a url", {}),
    ],
)
def test_server_attributes_always_pair_the_port_with_the_address(
    base_url: str, expected: dict[str, object]
) -> None:
    assert server_attributes(ProviderEndpoint("p", "openai", base_url)) == expected
