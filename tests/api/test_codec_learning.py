"""Route explains a learned pick: each candidate's estimate, its uncertainty, the scores it rests
on and whether it is the exploration probe survive the codec and the wire."""

from __future__ import annotations

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.api import codec
from router_service.domain import CandidateView, RouteDecision, TaskType


def test_each_candidate_carries_its_estimate_uncertainty_samples_and_whether_it_is_a_probe() -> None:
    probe = CandidateView("b", "small", True, "", 0.61, 2_000, 0.61, True, 0.13, 2.5, True)
    known = CandidateView("a", "tiny", True, "", 0.74, 1_000, 0.74, True, 0.02, 37.25, False)
    decision = RouteDecision("p", "learned", TaskType.CODE, ("b/small", "a/tiny"), (probe, known))
    wire = pb.RouteDecision.FromString(codec.decision_to_proto("r1", decision).SerializeToString())
    shown = [(c.quality, c.quality_sd, c.quality_samples, c.exploration) for c in wire.candidates]
    assert shown == [(0.61, 0.13, 2.5, True), (0.74, 0.02, 37.25, False)]
    assert wire.chosen == "b/small"


def test_a_decision_without_a_learner_leaves_the_learned_fields_unset() -> None:
    plain = CandidateView("a", "tiny", True, "", 0.9, 1_000, 0.9, True)
    wire = codec.candidate_to_proto(plain)
    assert (wire.quality_sd, wire.quality_samples, wire.exploration) == (0.0, 0.0, False)
    assert wire.quality == 0.9
