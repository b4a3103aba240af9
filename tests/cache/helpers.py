"""Requests, identities and answers the cache tests share."""

from __future__ import annotations

from router_service.cache.entry import CachedAnswer
from router_service.catalog import Deployment, Price
from router_service.domain import (
    ChatRequest,
    FinishReason,
    GenerationParams,
    Message,
    Role,
    ToolCall,
    Usage,
)
from router_service.identity.model import Identity

ACME_SEARCH = Identity(key_id="k_acme_1", team="search", customer="acme")
ACME_SEARCH_2 = Identity(key_id="k_acme_2", team="search", customer="acme")
GLOBEX_SEARCH = Identity(key_id="k_globex_1", team="search", customer="globex")


def request(text: str = "What is 2+2?", *, temperature: float | None = 0.0) -> ChatRequest:
    return ChatRequest(
        messages=(Message(Role.SYSTEM, "Be brief."), Message(Role.USER, text)),
        params=GenerationParams(temperature=temperature, max_output_tokens=64),
    )


def answer(content: str = "4", *, created_at: float = 7e8 + 1e9) -> CachedAnswer:
    return CachedAnswer(
        content=content,
        tool_calls=(ToolCall("call_1", "lookup", '{"q":"x"}'),),
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=12, output_tokens=3, cached_input_tokens=2),
        deployment="openai/gpt-small",
        upstream_model="gpt-small-2026",
        created_at=created_at,
    )


def deployment() -> Deployment:
    return Deployment(
        provider="openai",
        model="gpt-small",
        upstream_model="gpt-small-2026",
        price=Price(1_000_000_000, 4_000_000_000, 500_000_000),
        context_window=128_000,
        max_output_tokens=4096,
        capabilities=frozenset({"streaming"}),
    )
