"""The limits drill, bounded (bench/limits_drill.py has the full one): three real router
processes on one real Redis, the real broker and costs consumer, concurrent callers mixing
unary, streams, abandoned streams and deadlines, hedging on, one router SIGKILLed mid-burst.
The costs rollup (the settled truth) must show the team's budget held within one worst-case
request per replica, and no calendar minute's tokens over the TPM limit."""

from __future__ import annotations

from pathlib import Path

from bench.limits_drill import Params, drill


async def test_a_budget_and_a_tpm_limit_hold_across_three_replicas_with_one_killed(tmp_path: Path) -> None:
    report = await drill(
        Params(seconds=20, callers=12, tpm_limit=20_000, budget_usd="0.20", kill_at_s=8), tmp_path
    )
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
