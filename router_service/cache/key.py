"""The cache key: a SHA-256 of who is asking and what they ask, so tenants never share an entry.

The hashed text starts with the tenant scope, so two tenants sending byte-identical requests get
different keys by construction; no lookup rule has to remember to compare owners. The scope is the
customer plus the team (`ScopeBy.TEAM`) or the key id (`ScopeBy.KEY`); a key with no team is its
own scope under `TEAM` too, rather than sharing with every team-less key of its customer. The
scope also carries the caller's access rules (allowed models, aliases, policies, regions, minimum
sensitivity, default policy): two keys of one team with different rules can be answered by
different deployments, so they do not share entries either.

The rest is the normalized request: messages, tools, tool choice, response format, every
generation option, the model selection and the routing hints (they decide which deployment may
answer), and the policy the request was routed with. Not in it: tags, the request id, trace
context, idempotency keys: nothing that does not change the answer.

A key names no secret: it is a hash, and what is hashed holds no API key secret (an `Identity`
has none), only the key id, and that only when the key is the scope or its team is empty.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from router_service.domain import ChatRequest, Message, ResponseFormat, RoutingHints, ToolChoice, ToolSpec
from router_service.identity.model import Identity

# Bumped when the normalization changes: old entries then simply stop matching.
KEY_VERSION = "llmrouter-cache-v1"


class ScopeBy(enum.Enum):
    TEAM = "team"  # a customer's team shares entries (keys without a team: each key alone)
    KEY = "key"  # each API key has its own entries


@dataclass(frozen=True, slots=True)
class TenantScope:
    """Whose entries these are. `kind` keeps a team and a key of the same name apart."""

    customer: str
    kind: str  # "team" or "key"
    name: str
    access: tuple[Any, ...] = ()  # the identity's access rules, normalized


def tenant_scope(identity: Identity, by: ScopeBy) -> TenantScope:
    if by is ScopeBy.TEAM and identity.team:
        kind, name = "team", identity.team
    else:
        kind, name = "key", identity.key_id
    return TenantScope(identity.customer, kind, name, _access(identity))


def cache_key(scope: TenantScope, request: ChatRequest, policy: str) -> str:
    """The hex SHA-256 naming this request's entry for this tenant. `policy` is the policy the
    request is routed with (after defaults), not only the one it named."""
    text = json.dumps(
        [KEY_VERSION, _scope(scope), policy, _request(request)],
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
        default=repr,  # total: an odd value in a tool schema changes the key, never raises
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _access(identity: Identity) -> tuple[Any, ...]:
    return (
        sorted(identity.allowed_models),
        sorted(identity.allowed_aliases),
        sorted(identity.allowed_policies),
        sorted(identity.allowed_regions),
        None if identity.min_sensitivity is None else identity.min_sensitivity.value,
        identity.default_policy,
    )


def _scope(scope: TenantScope) -> list[Any]:
    return [scope.customer, scope.kind, scope.name, list(scope.access)]


def _request(r: ChatRequest) -> list[Any]:
    p = r.params
    return [
        [_message(m) for m in r.messages],
        [r.selection.model, r.selection.alias, r.selection.disable_fallback],
        [_num(p.temperature), _num(p.top_p), p.max_output_tokens, list(p.stop_sequences), p.seed],
        [_tool(t) for t in r.tools],
        _tool_choice(r.tool_choice),
        _response_format(r.response_format),
        _hints(r.hints),
    ]


def _message(m: Message) -> list[Any]:
    return [
        m.role.value,
        m.content,
        [[c.id, c.name, c.arguments_json] for c in m.tool_calls],
        m.tool_call_id,
        m.name,
    ]


def _tool(t: ToolSpec) -> list[Any]:
    return [t.name, t.description, t.parameters]


def _tool_choice(c: ToolChoice | None) -> list[Any] | None:
    return None if c is None else [c.mode.value, c.function_name]


def _response_format(f: ResponseFormat | None) -> list[Any] | None:
    return None if f is None else [f.type.value, f.json_schema, f.schema_name]


def _hints(h: RoutingHints) -> list[Any]:
    return [
        h.policy,
        None if h.task_type is None else h.task_type.value,
        h.max_cost_nanos,
        _num(h.latency_target_s),
        _num(h.min_quality),
        h.data_sensitivity.value,
        sorted(h.allowed_providers),
        sorted(h.denied_providers),
    ]


def _num(value: float | None) -> float | None:
    # 0 and 0.0 and -0.0 are one temperature; JSON would spell them three ways.
    return None if value is None else float(value) + 0.0
