"""A timeout one router's own stalled loop caused (AttemptEvent.router_stalled) is no evidence
about the deployment (issue 19: fleet health), so the health consumer counts it as cancelled:
neither a failure nor a success. Without that, every router reading the fleet snapshot would
demote a healthy deployment because one router had a GC pause. Pure: aggregators fed literal
events, and the router's real codec into the consumers' decoder."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from consumers import events as ce
from consumers.decode import decode
from consumers.health.aggregate import HealthAggregator
from router_contract.health_score import MIN_STREAK
from router_contract.readers.health import fleet_health
from router_contract.snapshot_keys import record_key
from router_service.fleet.config import FleetConfig
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev
from tests.telemetry import helpers as th

T0 = 1_795_046_400.0
KEY = "openai/gpt-4o"
OK = ce.Attempt("openai", "gpt-4o", "success", latency_ms=100)
TIMEOUT = ce.Attempt("openai", "gpt-4o", "error", "timeout", 200)
STALLED = ce.Attempt("openai", "gpt-4o", "error", "timeout", 450, router_stalled=True)


def _health(history: list[ce.Attempt]) -> dict[str, object]:
    """The fleet's merged health of `history`, one attempt every 0.1 s, as a router reads it."""
    aggregator = HealthAggregator()
    for i, attempt in enumerate(history):
        envelope = ce.Envelope(f"e{i}", T0 + i * 0.1, f"req-{i}", router_instance="r1")
        aggregator.apply(ce.Event(envelope, attempt), i)
    latest = {record_key(r.key, 0): r.value for r in aggregator.changes(T0)}
    return fleet_health(latest, now_s=T0 + len(history) * 0.1)[KEY]  # type: ignore[arg-type,no-any-return]


def test_one_routers_stalled_timeouts_do_not_demote_a_healthy_deployment() -> None:
    history = [OK] * 20 + [STALLED] * 6
    health = _health(history)
    assert health["health_score"] == 1.0
    assert FleetConfig().traffic_share(float(health["health_score"])) == 1.0  # type: ignore[arg-type]
    assert (health["attempts"], health["successes"], health["cancelled"], health["errors"]) == (26, 20, 6, {})
    assert health["current"] == {"failing": False, "failures_since_success": 0, "open_breakers": []}
    # The same timeouts without the flag are the deployment's: failing now, and demoted.
    unflagged = _health([OK] * 20 + [TIMEOUT] * 6)
    assert float(unflagged["health_score"]) < FleetConfig().demote_below  # type: ignore[arg-type]


def test_a_stalled_timeout_is_no_success_either() -> None:
    """It does not end a streak of real failures: the cap stays."""
    failing = _health([OK] * 20 + [TIMEOUT] * MIN_STREAK)
    assert _health([OK] * 20 + [TIMEOUT] * MIN_STREAK + [STALLED])["health_score"] == failing["health_score"]
    assert failing["current"]["failures_since_success"] == MIN_STREAK  # type: ignore[index]


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("stalled", [True, False])
def test_the_flag_reaches_the_consumer_in_both_encodings(encoding: str, stalled: bool) -> None:
    attempt = th.attempt(error_class="timeout", http_status=0, retry_after_s=None, router_stalled=stalled)
    _, value, headers = event_codec.encode(th.event(ev.AttemptEvent(0, attempt, "m")), encoding)  # type: ignore[arg-type]
    decoded = decode(value, headers)
    assert decoded is not None and isinstance(decoded.body, ce.Attempt)
    assert (decoded.body.error_class, decoded.body.router_stalled) == ("timeout", stalled)


def test_the_fast_json_spells_the_flag_as_the_canonical_mapping_does() -> None:
    event = th.event(ev.AttemptEvent(0, th.attempt(router_stalled=True), "m"))
    fast = json.loads(event_codec.encode(event, "json", router_instance="r")[1])
    canonical = json_format.MessageToDict(
        event_codec.to_proto(event, router_instance="r"), always_print_fields_with_no_presence=True
    )
    assert fast == canonical and fast["attempt"]["routerStalled"] is True


def test_an_event_from_before_the_flag_reads_as_not_stalled() -> None:
    event = th.event(ev.AttemptEvent(0, th.attempt(error_class="timeout"), "m"))
    data = json.loads(event_codec.encode(event, "json", router_instance="r")[1])
    del data["attempt"]["routerStalled"]
    decoded = decode(json.dumps(data).encode(), [("content-type", b"application/json")])
    assert decoded is not None and isinstance(decoded.body, ce.Attempt)
    assert decoded.body.router_stalled is False
