"""The routing entry point the engine holds: named policies, their counters and random draws.

`plan` is the pure function; `Router` owns the little state around it that must outlive a request
(round-robin counters, a random generator) and picks the policy a request names. Build one at
startup; `Router.__init__` compiles every policy, so bad config fails there.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping

from router_service.catalog import Catalog
from router_service.domain import ChatRequest, RouteDecision
from router_service.errors import FieldViolation, InvalidRequestError
from router_service.routing.compiled import compiled_policy
from router_service.routing.planner import DEFAULT_ENV, RoutingEnv, decide
from router_service.routing.policy import Policy
from router_service.routing.signals import HealthView, LiveSignals, PosteriorQualityView, QualityView
from router_service.routing.strategies.learned import learns


class RoundRobinCounters:
    """One ever-increasing ticket per policy name. `itertools.count` is atomic under the GIL."""

    __slots__ = ("_counters",)

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, name: str) -> int:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters.setdefault(name, itertools.count())
        return next(counter)


class Router:
    def __init__(
        self,
        catalog: Catalog,
        policies: Mapping[str, Policy],
        default_policy: str,
        *,
        env: RoutingEnv = DEFAULT_ENV,
        seed: int | None = None,
        rng: random.Random | None = None,
        learner: PosteriorQualityView | None = None,
    ) -> None:
        """`rng`: the random stream to draw from (the engine passes its own, which outlives
        reloads); without one, a new stream seeded with `seed`. `learner`: the quality view of
        the policies whose strategy uses `learned` (others keep the `quality` `route` is given)."""
        if default_policy not in policies:
            raise ValueError(f"default policy {default_policy!r} is not defined")
        for name, policy in policies.items():
            if name != policy.name:
                raise ValueError(f"policies.{name}: name mismatch ({policy.name!r})")
        # Compiling raises on unknown models. Kept here so a request does no lookup by identity.
        self._compiled = {name: compiled_policy(catalog, policy) for name, policy in policies.items()}
        self.catalog = catalog
        self.policies = dict(policies)
        self.default_policy = default_policy
        self.env = env
        self._counters = RoundRobinCounters()
        self._rng = rng if rng is not None else random.Random(seed)
        self._learner = learner
        self._learning = (
            frozenset(n for n, p in policies.items() if learns(p.strategy)) if learner else frozenset()
        )

    def policy(self, name: str = "") -> Policy:
        """The named policy ("" for the default); InvalidRequestError if there is none."""
        policy = self.policies.get(name or self.default_policy)
        if policy is None:
            known = ", ".join(sorted(self.policies))
            violation = FieldViolation("hints.policy", f"unknown policy {name!r} (known: {known})")
            raise InvalidRequestError([violation])
        return policy

    def route(
        self,
        request: ChatRequest,
        health: HealthView,
        now: float,
        *,
        live: LiveSignals | None = None,
        quality: QualityView | None = None,
        streaming: bool = False,
        allowed_models: frozenset[str] | None = None,
        sticky_key: str = "",
    ) -> RouteDecision:
        """Route with the request's policy. With a `sticky_key` (a user or conversation id) the
        draws come from its hash, so the same key gets the same weighted/round-robin choice."""
        name = request.hints.policy
        policy = self.policies.get(name or self.default_policy)
        if policy is None:
            policy = self.policy(name)  # raises InvalidRequestError
        compiled = self._compiled.get(policy.name)
        if compiled is None or compiled.policy is not policy:  # `policies` changed since __init__
            compiled = compiled_policy(self.catalog, policy)
        if policy.name in self._learning:
            quality = self._learner
        if sticky_key:
            ticket, random_value = _sticky_draws(sticky_key)
        else:
            ticket, random_value = self._counters.next(policy.name), self._rng.random()
        # The same as plan() with a RequestContext of these draws, without building one.
        return decide(
            compiled,
            request,
            health,
            now,
            live=live,
            quality=quality,
            env=self.env,
            random_value=random_value,
            ramp_value=self._rng.random(),  # never sticky: slow start must spread across keys
            ticket=ticket,
            streaming=streaming,
            allowed_models=allowed_models,
        )


def _sticky_draws(key: str) -> tuple[int, float]:
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    ticket = int.from_bytes(digest[:8], "big")
    random_value = (int.from_bytes(digest[8:], "big") >> 11) / 2.0**53  # 53 bits: strictly below 1
    return ticket, random_value
