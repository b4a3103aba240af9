"""The only map from a provider `kind` in config to its adapter class.

A new wire protocol is one module, one line here, one test file. An unknown kind fails at config
validation (settings.ProviderConfig.kind is a Literal of these keys).
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import httpx

from router_service.providers.anthropic import AnthropicAdapter
from router_service.providers.base import ProviderAdapter, ProviderEndpoint
from router_service.providers.gemini import GeminiAdapter
from router_service.providers.openai import OpenAIAdapter
from router_service.providers.url_safety import is_cleartext_remote

log = logging.getLogger(__name__)

AdapterFactory = Callable[[ProviderEndpoint, httpx.AsyncClient], ProviderAdapter]

ADAPTERS: Mapping[str, AdapterFactory] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def build_adapters(
    endpoints: Mapping[str, ProviderEndpoint], client: httpx.AsyncClient
) -> dict[str, ProviderAdapter]:
    """One adapter per configured provider, all sharing one pooled HTTP client. Runs at start and
    on every reload, so an endpoint that sends its key in clear is warned about each time."""
    for name, ep in endpoints.items():
        if is_cleartext_remote(ep.base_url):
            log.warning(
                "provider %s: base_url is plain http to a non-loopback host (allow_insecure: true);"
                " its API key and prompts travel in clear",
                name,
            )
    return {name: ADAPTERS[ep.kind](ep, client) for name, ep in endpoints.items()}
