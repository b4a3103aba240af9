"""Reservation math: the most a request can cost and use, before it is sent.

Worst case, on purpose: every estimated input token at the full input price (no cache hit), and
the output at its cap (the caller's max_output_tokens, never more than the deployment's own
maximum), on the dearest candidate the plan may try. Only one attempt is billed: a fallback runs
after the failed attempt ended, and a hedge reserves separately. The arithmetic is
`Price.cost_nanos`, exact integers rounded up once, so the reservation and the settled cost are
the same numbers the costs consumer rolls up.

What can still exceed a reservation is the input estimate itself (characters / 4 is a rule, not a
tokenizer): the settle then counts the real cost, and that excess is part of the overspend bound.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable

from router_service.catalog import Deployment
from router_service.domain import Usage
from router_service.limits.model import Estimate


def output_cap(deployment: Deployment, requested_max_output: int | None) -> int:
    cap = deployment.max_output_tokens
    return cap if requested_max_output is None else min(requested_max_output, cap)


def worst_case(
    candidates: Iterable[Deployment], prompt_tokens: int, requested_max_output: int | None
) -> Estimate:
    """The reservation for a request that may be answered by any of `candidates`."""
    cost = 0
    tokens = 0
    for deployment in candidates:
        output = output_cap(deployment, requested_max_output)
        cost = max(cost, deployment.price.cost_nanos(Usage(input_tokens=prompt_tokens, output_tokens=output)))
        tokens = max(tokens, prompt_tokens + output)
    return Estimate(cost_nanos=cost, tokens=tokens)
