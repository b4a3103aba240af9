"""The health summary of a provider/model over a window, and its health score.

Health score, in [0, 1] (1 is healthy), rounded to 4 decimals:

    judged       = successes + provider errors
    availability = (successes + PRIOR) / (judged + PRIOR)          PRIOR = 5 pseudo-successes
    latency      = min(1, latency_slo_ms / p95 latency of successful attempts)   (1 without samples)
    score        = availability * latency

Provider errors are the classes that say the deployment cannot serve right now: rate_limited,
overloaded, timeout, connection, auth, bad_response. The caller's own errors (invalid_request,
context_length_exceeded, content_filtered) and cancelled attempts (a lost hedge, a caller gone;
the health consumer counts a router's stalled-loop timeout, AttemptEvent.router_stalled, as one)
do not count for or against the provider. The prior keeps a deployment with a handful of attempts
from swinging between 0 and 1 on one failure: 1 failure in 1 attempt scores 5/6, 10 in 10 scores
1/3, 100 in 100 scores 0.05. The latency factor only bites past the SLO (default 30 s): slowness
below that is the routing strategies' business, not health's.

That is the window's verdict; a deployment failing *now* is capped below it (health_recent.py):

    current      = PRIOR / (PRIOR + streak)  when streak >= MIN_STREAK, else 1
                   streak: provider failures since the newest success (fleet-wide)
    current      = min(current, BREAKER_OPEN_SCORE)  while any router reports its breaker open
    score        = min(availability * latency, current)

So the last MIN_STREAK attempts failing, or one router's open breaker, demote a deployment
whatever its earlier successes (0.625 after 3 failures in a row, 0.25 with a breaker open: below
the routers' default demotion threshold 0.9 and floor 0.5), and one success lifts the cap. Fewer
than MIN_STREAK failures in a row are the ordinary noise of a healthy deployment and do not cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from router_contract.health_recent import Recent
from router_contract.health_slots import Slot

PROVIDER_ERRORS = frozenset({"rate_limited", "overloaded", "timeout", "connection", "auth", "bad_response"})
PRIOR_SUCCESSES = 5
MIN_STREAK = 3
BREAKER_OPEN_SCORE = 0.25
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    latency_slo_ms: float = 30_000.0


DEFAULT_SCORE_CONFIG = ScoreConfig()


def merged(slots: Iterable[Slot], relative_accuracy: float) -> Slot:
    total = Slot(relative_accuracy)
    for slot in slots:
        total.merge(slot)
    return total


def health_score(total: Slot, config: ScoreConfig = DEFAULT_SCORE_CONFIG, current: float = 1.0) -> float:
    """The window's score of `total`, capped at `current` (`current_score`)."""
    provider_errors = sum(count for name, count in total.errors.items() if name in PROVIDER_ERRORS)
    availability = (total.successes + PRIOR_SUCCESSES) / (total.successes + provider_errors + PRIOR_SUCCESSES)
    p95 = total.latency_ms.quantile(0.95)
    latency = 1.0 if not p95 else min(1.0, config.latency_slo_ms / p95)
    return round(min(availability * latency, current), 4)


def current_score(recent: Recent, now_s: float) -> float:
    """The cap "failing now" puts on the score at `now_s` (1: none)."""
    streak = recent.streak
    score = PRIOR_SUCCESSES / (PRIOR_SUCCESSES + streak) if streak >= MIN_STREAK else 1.0
    if recent.open_breakers(now_s):
        score = min(score, BREAKER_OPEN_SCORE)
    return score


def summary(
    total: Slot,
    span_s: float,
    config: ScoreConfig = DEFAULT_SCORE_CONFIG,
    recent: Recent | None = None,
    now_s: float = 0.0,
) -> dict[str, Any]:
    """The derived fields of a health snapshot, from the merged slots of a window `span_s` long
    and what the deployment is doing at `now_s` (`recent`; None: nothing known)."""
    attempts = total.attempts
    errors = sum(total.errors.values())
    recent = recent if recent is not None else Recent()
    current = current_score(recent, now_s)
    return {
        "attempts": attempts,
        "successes": total.successes,
        "cancelled": total.cancelled,
        "errors": dict(sorted(total.errors.items())),
        "request_rate_per_s": round(attempts / span_s, 6) if span_s > 0 else 0.0,
        "error_rate": _ratio(errors, attempts),
        "error_rate_by_class": {
            name: _ratio(count, attempts) for name, count in sorted(total.errors.items())
        },
        "latency_ms": _quantiles(total.latency_ms.quantile),
        "ttft_ms": _quantiles(total.ttft_ms.quantile),
        "health_score": health_score(total, config, current),
        "current": {
            "failing": current < 1.0,
            "failures_since_success": recent.streak,
            "open_breakers": recent.open_breakers(now_s),
        },
    }


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _quantiles(quantile: Callable[[float], float | None]) -> dict[str, float | None]:
    return {name: _rounded(quantile(q)) for name, q in QUANTILES.items()}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
