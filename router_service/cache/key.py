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
from dataclasses import dataclass, field
from typing import Any

from router_service.domain import ChatRequest, Message, ResponseFormat, RoutingHints, ToolChoice, ToolSpec
from router_service.identity.model import Identity

# Bumped when the normalization changes: old entries then simply stop matching.
KEY_VERSION = "llmrouter-cache-v2"

# The schemas inside a request (tool parameters, a response format's JSON schema) as canonical
# JSON: keys sorted, and total (an odd value changes the key, never raises). Made once: `json.dumps`
# with options builds an encoder per call.
_SCHEMA_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=repr)


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
    # The version and this scope as the first bytes hashed: spelled once per scope (the cache
    # keeps scopes per identity), not once per request.
    _prefix: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        text = repr((KEY_VERSION, self.customer, self.kind, self.name, self.access))
        object.__setattr__(self, "_prefix", _utf8(text) + b"\n")


def tenant_scope(identity: Identity, by: ScopeBy) -> TenantScope:
    if by is ScopeBy.TEAM and identity.team:
        kind, name = "team", identity.team
    else:
        kind, name = "key", identity.key_id
    return TenantScope(identity.customer, kind, name, _access(identity))


def cache_key(scope: TenantScope, request: ChatRequest, policy: str) -> str:
    """The hex SHA-256 naming this request's entry for this tenant. `policy` is the policy the
    request is routed with (after defaults), not only the one it named.

    What is hashed, after the scope: the `repr` of a tuple of plain values (str, int, float, bool,
    None, tuples: a Python literal, so distinct values never spell the same text), in which each
    message's content stands as its length in UTF-8 bytes; then the contents' bytes, in order.
    The long texts are so hashed as they are, not escaped into a serialization first (that was
    most of a hit's key cost); their lengths keep where one ends and the next begins part of it.
    (A newer Python's Unicode tables may escape a rare character in a repr differently: replicas
    on two versions then miss each other's entries for it, never hit a wrong one.)"""
    contents = [_utf8(m.content) for m in request.messages]
    header = _header(policy, _request(request, contents))
    # One call over the joined bytes: copying a hash object seeded with the scope cost more than
    # hashing the scope's hundred bytes again. A repr never holds a raw newline: "\n" ends each part.
    return hashlib.sha256(b"".join((scope._prefix, header, b"\n", *contents))).hexdigest()


# The header bytes of the requests seen lately, by their normalized tuple: the same request again
# (every hit) hashes the tuple (its strings keep their hashes) instead of spelling it out, which
# was two thirds of a hit's key cost. Equal tuples spell the same text: each field has one type
# (a str, an int, a float made by `_num`, a bool), and a NaN never equals a new one (so it is
# spelled again). Bounded in count (cleared when full, as the cache's scopes) and in size: a long
# header (tool-call arguments, schemas) is spelled every time rather than kept, so the memo holds
# at most ~2 MB of request text and no large payload outlives its request for long.
_HEADERS: dict[tuple[str, tuple[Any, ...]], bytes] = {}
_HEADERS_MAX = 1024
_HEADER_MAX_BYTES = 2048


def _header(policy: str, normalized: tuple[Any, ...]) -> bytes:
    memo_key = (policy, normalized)
    header = _HEADERS.get(memo_key)
    if header is None:
        header = _utf8(repr(memo_key))
        if len(header) <= _HEADER_MAX_BYTES:
            if len(_HEADERS) >= _HEADERS_MAX:
                _HEADERS.clear()
            _HEADERS[memo_key] = header
    return header


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _access(identity: Identity) -> tuple[Any, ...]:
    return (
        tuple(sorted(identity.allowed_models)),
        tuple(sorted(identity.allowed_aliases)),
        tuple(sorted(identity.allowed_policies)),
        tuple(sorted(identity.allowed_regions)),
        None if identity.min_sensitivity is None else identity.min_sensitivity.value,
        identity.default_policy,
    )


def _request(r: ChatRequest, contents: list[bytes]) -> tuple[Any, ...]:
    p = r.params
    return (
        tuple([_message(m, len(c)) for m, c in zip(r.messages, contents, strict=True)]),
        (r.selection.model, r.selection.alias, r.selection.disable_fallback),
        (_num(p.temperature), _num(p.top_p), p.max_output_tokens, tuple(p.stop_sequences), p.seed),
        tuple([_tool(t) for t in r.tools]),
        _tool_choice(r.tool_choice),
        _response_format(r.response_format),
        _hints(r.hints),
    )


# Per message and per hint, on every lookup: `_value_` (the member's value, as `.value` answers
# it, without `.value`'s descriptor call), and no comprehension for a message without tool calls
# (most): together ~0.4 us a message.
def _message(m: Message, content_bytes: int) -> tuple[Any, ...]:
    tool_calls = m.tool_calls
    calls = tuple([(c.id, c.name, c.arguments_json) for c in tool_calls]) if tool_calls else ()
    return (m.role._value_, content_bytes, calls, m.tool_call_id, m.name)


def _tool(t: ToolSpec) -> tuple[Any, ...]:
    return (t.name, t.description, _SCHEMA_JSON.encode(t.parameters))


def _tool_choice(c: ToolChoice | None) -> tuple[Any, ...] | None:
    return None if c is None else (c.mode.value, c.function_name)


def _response_format(f: ResponseFormat | None) -> tuple[Any, ...] | None:
    if f is None:
        return None
    schema = None if f.json_schema is None else _SCHEMA_JSON.encode(f.json_schema)
    return (f.type.value, schema, f.schema_name)


def _hints(h: RoutingHints) -> tuple[Any, ...]:
    return (
        h.policy,
        None if h.task_type is None else h.task_type._value_,
        h.max_cost_nanos,
        _num(h.latency_target_s),
        _num(h.min_quality),
        h.data_sensitivity._value_,
        tuple(sorted(h.allowed_providers)),
        tuple(sorted(h.denied_providers)),
    )


def _num(value: float | None) -> float | None:
    # 0 and 0.0 and -0.0 are one temperature; repr would spell them three ways.
    return None if value is None else float(value) + 0.0
