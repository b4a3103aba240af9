"""The limits drill's verdict from the costs rollups, the settled truth (pure): team `budget`'s
spend against its limit plus one worst-case request per replica, team `tpm`'s tokens per calendar
minute against its limit."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from bench.limits_drill_callers import Burst
from bench.limits_drill_params import MAX_OUTPUT, NANOS_PER_USD, PRICE, PROMPT, Params
from router_contract.readers.costs import fleet_totals
from router_contract.windows import window_start
from router_service.catalog import Deployment
from router_service.domain import ChatRequest, Message, Role
from router_service.limits import cost
from router_service.limits.model import Estimate
from router_service.routing.cost import CostModel
from router_service.settings import parse_config


def _deployment() -> Deployment:
    config = parse_config(
        {
            "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
            "models": [{"name": "drill", "provider": "sim", "price_per_mtok": PRICE}],
            "policies": {"default": {"models": ["drill"]}},
        }
    )
    return config.catalog.deployments[0]


def worst_case() -> Estimate:
    """One request's reservation as the router makes it (limits/cost.py): the routing cost
    model's prompt estimate, the caller's output cap, the catalog price."""
    prompt = CostModel().prompt_tokens(ChatRequest(messages=(Message(role=Role.USER, content=PROMPT),)))
    return cost.worst_case((_deployment(),), prompt, MAX_OUTPUT)


def team_totals(latest: dict[str, Any], team: str, granularity: str, start: int) -> Any:
    return fleet_totals(latest, granularity, start).get(f"team={team}")


def summarize(p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], burst: Burst) -> dict[str, Any]:
    return {
        "benchmark": "limits drill",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "params": asdict(p),
        "killed_router_at_s": round(burst.killed_at_s, 1),
        "outcomes": {team: asdict(o) for team, o in burst.outcomes.items()},
        "budget": budget_summary(p, latest, burst.started_wall),
        "tpm": tpm_summary(p, latest, tpm_minutes, burst.started_wall, burst.ended_wall),
    }


def budget_summary(p: Params, latest: dict[str, Any], start: float) -> dict[str, Any]:
    """Team `budget`'s spend in the day window against its limit and the overspend target."""
    budget = team_totals(latest, "budget", "day", window_start(start, 86400))
    spent = budget.cost_nanos_usd if budget is not None else 0
    worst = worst_case().cost_nanos
    limit = int(Decimal(p.budget_usd) * NANOS_PER_USD)
    return {
        "limit_nanos": limit,
        "spent_nanos": spent,
        "overspend_nanos": max(0, spent - limit),
        "worst_case_request_nanos": worst,
        "target_overspend_nanos": 3 * worst,
        "requests_counted": budget.requests if budget is not None else 0,
        "pass": spent - limit <= 3 * worst,
    }


def tpm_summary(
    p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], start: float, end: float
) -> dict[str, Any]:
    """Team `tpm`'s tokens in each calendar minute the burst touched; the verdict is on the
    minutes it covered whole."""
    minutes = [
        minute_summary(p, latest, tpm_minutes, minute, start, end)
        for minute in range(window_start(start, 60), int(end) + 60, 60)
    ]
    whole = [m for m in minutes if m["whole"]]
    worst_share: float | None = max((abs(1 - float(m["share_of_limit"])) for m in whole), default=None)
    return {
        "limit": p.tpm_limit,
        "worst_case_request_tokens": worst_case().tokens,
        "minutes": minutes,
        "whole_minutes": len(whole),
        "max_deviation_whole_minutes": worst_share,
        "pass": worst_share is not None and worst_share <= 0.01,
    }


def minute_summary(
    p: Params, latest: dict[str, Any], tpm_minutes: dict[int, int], minute: int, start: float, end: float
) -> dict[str, Any]:
    """One minute's tokens: the final rollup's, or more if a sample during the burst saw more
    (the rollup keeps only two minutes)."""
    totals = team_totals(latest, "tpm", "minute", minute)
    tokens = 0 if totals is None else totals.input_tokens + totals.output_tokens
    tokens = max(tokens, tpm_minutes.get(minute, 0))
    return {
        "minute": dt.datetime.fromtimestamp(minute, dt.UTC).isoformat(),
        "whole": minute >= start and minute + 60 <= end,
        "tokens": tokens,
        "share_of_limit": round(tokens / p.tpm_limit, 5),
    }
