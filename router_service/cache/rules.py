"""What may be cached, and what the caller asked of the cache for one request. Pure.

A request is cached only when its policy or its key opted in, and, by default, only when its
answer is deterministic enough to repeat: temperature 0 or a seed set, and no tools (a tool call
usually leads to a side effect the caller wants to happen again). `CacheRules` can relax both.

The caller's directives, per request (the contract field comes with the wiring):
- `no_cache`: do not answer from the cache (the fresh answer may still be stored);
- `no_store`: do not store this answer (a cached one may still answer);
- `max_age_s`: answer only from an entry at most this old (0: never from the cache).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from router_service.domain import ChatRequest
from router_service.identity.model import Identity

EVERYONE = "*"


@dataclass(frozen=True, slots=True)
class Directives:
    no_cache: bool = False
    no_store: bool = False
    max_age_s: float | None = None


NO_DIRECTIVES = Directives()


class Skip(enum.Enum):
    """Why a request goes around the cache (a metric label: a closed set)."""

    NOT_OPTED_IN = "not_opted_in"
    NONDETERMINISTIC = "nondeterministic"
    TOOLS = "tools"


@dataclass(frozen=True, slots=True)
class CacheRules:
    policies: frozenset[str] = frozenset()  # policies that opted in ("*": every policy)
    keys: frozenset[str] = frozenset()  # key ids that opted in ("*": every key)
    cache_nondeterministic: bool = False  # also cache calls with temperature > 0 and no seed
    cache_tools: bool = False  # also cache requests that offer tools


@dataclass(frozen=True, slots=True)
class Access:
    """What the cache may do for one request: read an entry, write one, or neither."""

    read: bool
    write: bool
    skip: Skip | None = None  # set when the request is not cacheable at all


# The four answers for a cacheable request, shared (frozen): a hit builds none.
_ACCESS = {(read, write): Access(read, write) for read in (False, True) for write in (False, True)}


def access(rules: CacheRules, identity: Identity, request: ChatRequest, policy: str, d: Directives) -> Access:
    skip = why_not_cacheable(rules, identity, request, policy)
    if skip is not None:
        return Access(False, False, skip)
    return _ACCESS[(not d.no_cache and d.max_age_s != 0, not d.no_store)]


def why_not_cacheable(
    rules: CacheRules, identity: Identity, request: ChatRequest, policy: str
) -> Skip | None:
    if not _opted_in(rules, identity, policy):
        return Skip.NOT_OPTED_IN
    if request.tools and not rules.cache_tools:
        return Skip.TOOLS
    if not rules.cache_nondeterministic and not deterministic_enough(request):
        return Skip.NONDETERMINISTIC
    return None


def deterministic_enough(request: ChatRequest) -> bool:
    """Temperature 0 or a seed. No temperature is the provider's default, which is not 0."""
    params = request.params
    return params.temperature == 0 or params.seed is not None


def fresh(age_s: float, ttl_s: float, d: Directives) -> bool:
    """Whether an entry this old may answer: within the TTL (the store also expires it) and the
    caller's max age."""
    if age_s > ttl_s:
        return False
    return d.max_age_s is None or age_s <= d.max_age_s


def _opted_in(rules: CacheRules, identity: Identity, policy: str) -> bool:
    return (
        EVERYONE in rules.policies
        or policy in rules.policies
        or EVERYONE in rules.keys
        or (bool(identity.key_id) and identity.key_id in rules.keys)
    )
