"""One caller's spend per model (router_service/fleet/spend.py): names that need escaping, a
zone's calendar window, stale and catching-up topics."""

from __future__ import annotations

import pytest

from consumers import events as ce
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from router_contract.snapshot_keys import record_key
from router_service.fleet.config import FleetConfig
from router_service.fleet.spend import caller_spend, spend_table
from router_service.fleet.view import FleetView, Topic, build_view
from tests.consumers.helpers import consumer_event

T0 = 1_796_083_200  # 2026-12-01T00:00:00Z: 05:30 on the 1st in Kolkata, 00:00 in UTC


def _view(*completions: tuple[float, str, int]) -> FleetView:
    aggregator = CostsAggregator(CostsConfig(time_zones=("Asia/Kolkata",)))
    for i, (t, model, cost) in enumerate(completions):
        body = ce.Completion("p", model, 10, 2, cost_nanos_usd=cost)
        aggregator.apply(consumer_event(body, event_id=f"e{i}", time_s=t, team="a=b,c"), i)
    latest = {record_key(r.key, 0): r.value for r in aggregator.changes(T0)}
    return build_view({Topic.COSTS: latest}, frozenset(), T0, FleetConfig())  # type: ignore[dict-item]


def test_models_and_team_names_that_need_escaping_read_back_exactly() -> None:
    view = _view((T0, "org/m,1", 10**12 + 1), (T0 + 60, "m=2", 3), (T0 + 120, "org/m,1", 4))
    spend = caller_spend(view, "team", "a=b,c", "month", "UTC", T0 + 3600)
    assert {m: (t.requests, t.cost_nanos_usd) for m, t in spend.by_model.items()} == {
        "org/m,1": (2, 10**12 + 5),
        "m=2": (1, 3),
    }
    assert (spend.total.requests, spend.total.cost_nanos_usd) == (3, 10**12 + 8)
    rows = spend_table(view, spend).splitlines()
    assert rows[-1].split()[:3] == ["total", "3", "1000.000000008"]


def test_a_zones_month_is_its_own_window() -> None:
    # 2026-11-30T20:00Z is 1 December 01:30 in Kolkata: November in UTC, December there.
    view = _view((T0 - 4 * 3600, "m", 7), (T0, "m", 5))
    utc = caller_spend(view, "team", "a=b,c", "month", "UTC", T0)
    kolkata = caller_spend(view, "team", "a=b,c", "month", "Asia/Kolkata", T0)
    assert (utc.total.cost_nanos_usd, kolkata.total.cost_nanos_usd) == (5, 12)
    assert spend_table(view, kolkata).splitlines()[0].endswith("2026-12-01 00:00 IST to 2027-01-01 00:00 IST")
    with pytest.raises(ValueError, match="minute@Asia/Kolkata"):
        caller_spend(view, "team", "a=b,c", "minute", "Asia/Kolkata", T0)


def test_a_stale_topic_says_so() -> None:
    spend = caller_spend(FleetView(), "key", "k_1", "day", "UTC", T0)
    assert "no fresh snapshot" in spend_table(FleetView(), spend)
