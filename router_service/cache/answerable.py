"""Whether a cached answer may answer this request now, decided without routing it. Pure.

The engine looks an entry up before routing (a hit then pays neither the task classifier nor the
ranking of candidates), keyed on the policy the request names or the router's default. A hit is
then checked against what routing would refuse whatever the live state: the entry's deployment
must still be in the catalog and a candidate of that policy for the request's model selection,
not ruled out by the policy itself (providers, regions), allowed to this key (models, regions)
and to the request's providers hints, and cleared for the request's data sensitivity (the
stricter of the request's and the policy's floor). An entry failing any of these is a miss.

Not checked: health, latency, cost and quality, which rank or exclude live deployments; an entry
is an answer already made, whose deployment is not called again.

`hit_decision` is the decision a hit reports: the policy, its strategy label, the task type the
answer was made for, and the answering deployment as the whole chain.
"""

from __future__ import annotations

from router_service.catalog import Catalog, Deployment
from router_service.domain import CandidateView, ChatRequest, RouteDecision, TaskType
from router_service.errors import UnknownModelError
from router_service.identity.model import Identity
from router_service.routing.candidate import sensitivity_rank
from router_service.routing.compiled import compiled_policy
from router_service.routing.policy import Policy


def answering_deployment(
    catalog: Catalog, policy: Policy, request: ChatRequest, identity: Identity, deployment_key: str
) -> tuple[Deployment, str] | None:
    """(the deployment as the catalog has it now, the strategy label) when the entry's deployment
    may answer `request` under `policy`; None when routing could not pick it whatever the health."""
    try:
        table, strategy = compiled_policy(catalog, policy).candidates(request.selection)
    except UnknownModelError:  # a pin or alias a reload removed: routing says so, not the cache
        return None
    i = table.index_of.get(deployment_key)
    if i is None or table.static_reasons[i] is not None:
        return None
    d = table.deployments[i]
    if not (identity.may_use_model(d.model, d.key) and identity.may_use_region(d.region)):
        return None
    hints = request.hints
    if (hints.allowed_providers and d.provider not in hints.allowed_providers) or (
        d.provider in hints.denied_providers
    ):
        return None
    needed = sensitivity_rank(hints.data_sensitivity)
    if policy.min_sensitivity is not None:
        needed = max(needed, sensitivity_rank(policy.min_sensitivity))
    if needed > table.sensitivity_ranks[i]:
        return None
    return d, strategy


def hit_decision(policy: str, strategy: str, task: TaskType, deployment: Deployment) -> RouteDecision:
    view = CandidateView(deployment.provider, deployment.model, True)
    return RouteDecision(policy, strategy, task, (deployment.key,), (view,))
