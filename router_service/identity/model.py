"""Who is calling, and what they may call.

An `Identity` is what a verified virtual key (or a mapped client certificate, or the configured
anonymous default) stands for: the attribution dimensions that events and cost rollups carry
(key id, team, customer, user) and the access rules routing and the API enforce.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from router_service.domain import DataSensitivity


class Scope(enum.Enum):
    """What a key may call. `evaluate` may score any request of its own customer. Health and
    reflection need none. `admin` is reserved for a key-management RPC, which does not exist:
    `routerctl keys` writes the store itself, so the admin right is access to the store (the key
    file's permissions, the Redis credentials), and no RPC checks this scope."""

    ROUTE = "route"
    COMPLETE = "complete"
    STREAM = "stream"
    FEEDBACK = "feedback"
    EVALUATE = "evaluate"
    ADMIN = "admin"


# What a key gets when its definition names no scopes: the calling RPCs, not feedback or admin.
DEFAULT_SCOPES = frozenset({Scope.ROUTE, Scope.COMPLETE, Scope.STREAM})

# RPC method name (the last part of the gRPC path) -> the scope it needs.
RPC_SCOPES: Mapping[str, Scope] = {
    "Route": Scope.ROUTE,
    "Complete": Scope.COMPLETE,
    "Stream": Scope.STREAM,
    "Feedback": Scope.FEEDBACK,
}


@dataclass(frozen=True, slots=True)
class Identity:
    """A caller. Empty allow-sets mean "no restriction"; `None` ceilings mean the policy's own."""

    key_id: str  # public, safe to log: "k_search_prod"
    team: str = ""
    customer: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    scopes: frozenset[Scope] = DEFAULT_SCOPES
    allowed_models: frozenset[str] = frozenset()  # catalog models or provider/model deployments
    allowed_aliases: frozenset[str] = frozenset()
    allowed_policies: frozenset[str] = frozenset()
    # Every request of this key is treated as at least this sensitive (routing then only picks
    # deployments cleared for it), whatever the request itself declares.
    min_sensitivity: DataSensitivity | None = None
    allowed_regions: frozenset[str] = frozenset()
    default_policy: str = ""

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes

    def may_use_model(self, model: str, deployment: str) -> bool:
        """Whether this identity may be answered by `deployment` ("provider/model") of `model`."""
        allowed = self.allowed_models
        return not allowed or model in allowed or deployment in allowed

    def may_use_alias(self, alias: str) -> bool:
        return not self.allowed_aliases or alias in self.allowed_aliases

    def may_use_policy(self, policy: str) -> bool:
        return not self.allowed_policies or policy in self.allowed_policies

    def may_use_region(self, region: str) -> bool:
        return not self.allowed_regions or region in self.allowed_regions


# The identity of a call when auth is `off`: attributes nothing, restricts nothing.
UNRESTRICTED = Identity(key_id="", scopes=frozenset(Scope) - {Scope.ADMIN})
