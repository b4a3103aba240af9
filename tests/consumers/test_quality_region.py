"""Feedback is filed under what the request was when it was routed (issue 17): the task its first
decision event recorded, not one a later decision for the same request re-derived."""

from __future__ import annotations

import pytest

from consumers import events as ce
from consumers.quality.aggregate import QualityAggregator
from consumers.quality.join import RequestIndex
from tests.consumers.test_quality import T0, Stream, _values


def test_a_second_decision_for_the_request_does_not_move_its_feedback_to_another_task() -> None:
    stream = Stream(QualityAggregator())
    stream.request("r1", task="code", model="m1")
    # The same request id routed again later (its idempotent answer expired), now classified as
    # chat by a retrained classifier, and answered by m2.
    stream.send(ce.Decision("chat", "p/m2"), "r1", T0 + 700)
    stream.send(ce.Completion("p", "m2"), "r1", T0 + 700)
    assert stream.send(ce.Feedback(0.9), "r1", T0 + 800) is True
    values = _values(stream.aggregator)
    assert "model=m2,task=chat" not in values
    code = values["model=m2,task=code"]
    assert code is not None and code["count"] == 1 and code["mean_score"] == pytest.approx(0.9)


def test_the_index_keeps_the_first_task_and_the_last_model() -> None:
    index = RequestIndex()
    index.note_task("r1", "extraction", 1, T0)
    index.note_model("r1", "m1", 2, T0)
    index.note_task("r1", "chat", 3, T0 + 1)
    index.note_model("r1", "m2", 4, T0 + 1)
    assert index.lookup("r1") == ("extraction", "m2")
