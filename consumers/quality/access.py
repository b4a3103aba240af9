"""Who may score a request: router_service/identity/access.py `may_score`, on event envelopes.

The router checks this when it knows the request (its ledger); the quality consumer checks it
again for every feedback event, because a router with `feedback.require_known_request: false`
forwards feedback for requests another replica served. The consumers import only the event
schema, so the rule is restated here; tests/identity/test_access.py holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Party:
    """The key, team and customer of an event's envelope (empty key id: auth off)."""

    key_id: str
    team: str = ""
    customer: str = ""


NOBODY = Party("")


def may_score(scorer: Party, evaluator: bool, owner: Party) -> bool:
    """The key that made the request, a key of its team and customer, or an evaluator of its
    customer. An empty key id on either side is auth `off`: no owner, or a trusting router."""
    if not scorer.key_id or not owner.key_id or scorer.key_id == owner.key_id:
        return True
    if scorer.customer != owner.customer:
        return False
    return (scorer.team != "" and scorer.team == owner.team) or evaluator
