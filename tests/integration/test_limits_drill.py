"""The limits drill, bounded (bench/limits_drill.py has the full one): three real router
processes on one real Redis, the real broker and costs consumer, concurrent callers mixing
unary, streams, abandoned streams and deadlines, hedging on, one router SIGKILLed mid-burst.
The costs rollup (the settled truth) must show the team's budget held within one worst-case
request per replica, and no calendar minute's tokens over the TPM limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.limits_drill import Params, drill, wait_to_fit_minute


@pytest.mark.parametrize(
    ("now", "wait"),
    [(1_800_000_000.0, 0.0), (1_800_000_039.0, 0.0), (1_800_000_039.5, 20.55), (1_800_000_059.9, 0.15)],
)
def test_a_burst_waits_for_the_next_minute_only_when_it_would_not_fit(now: float, wait: float) -> None:
    assert 1_800_000_000 % 60 == 0
    assert wait_to_fit_minute(now, 20.0) == pytest.approx(wait)


async def test_a_budget_and_a_tpm_limit_hold_across_three_replicas_with_one_killed(tmp_path: Path) -> None:
    # One calendar minute (the TPM window) holds the whole burst, and its limit is ~210 worst-case
    # requests: the tpm team's six callers reach it even when a loaded box makes each call take
    # half a second (at 20,000 and a burst split over two minutes they needed ~0.15 s a call).
    # The killed router's reservations come back 6 s after the kill, before the burst ends: with
    # the default 15 s they held the budget's last dollars to the end, and the spend fell short
    # of the limit by more than its slack when a loaded box had many calls in flight there.
    params = Params(
        seconds=20,
        callers=12,
        tpm_limit=10_000,
        budget_usd="0.20",
        kill_at_s=8,
        reservation_ttl_s=6.0,
        one_minute=True,
    )
    report = await drill(params, tmp_path)
    print(json.dumps({k: report[k] for k in ("outcomes", "budget", "tpm")}))  # pytest shows it on a failure
    budget, tpm = report["budget"], report["tpm"]
    # The burst wanted more than the budget: it was refused, and spend reached near the limit.
    assert report["outcomes"]["budget"]["exhausted"] > 0
    assert budget["spent_nanos"] >= budget["limit_nanos"] - 10 * budget["worst_case_request_nanos"]
    assert budget["spent_nanos"] - budget["limit_nanos"] <= budget["target_overspend_nanos"]
    # Every call a caller got an answer for is in the rollup (the killed router's too: restarted,
    # it replays its spool), counted once; an abandoned stream may or may not have finished.
    outcomes = report["outcomes"]["budget"]
    assert outcomes["ok"] <= budget["requests_counted"] <= outcomes["ok"] + outcomes["cancelled"]
    assert report["outcomes"]["tpm"]["exhausted"] > 0
    assert all(m["tokens"] <= tpm["limit"] for m in tpm["minutes"])
    assert sum(m["tokens"] > 0 for m in tpm["minutes"]) <= 2  # the burst's minute (+ calls ending after it)
