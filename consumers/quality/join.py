"""Which model answered a request, and for which task: the join that gives feedback a meaning.

A feedback event carries only the request id. The decision event of the same request has the
task type, its completion event the model that answered (after any fallback). All three are keyed
by the request id, so they share a partition, and this index, per partition, remembers
request id -> (task, model, owner) until the feedback comes. The owner (key, team, customer of
the decision's or completion's envelope) decides who may score it (access.py).

The task is what the request was when it was first routed: the caller's declared task when the
request gave one, else the router's classification then, as its first decision event recorded
it. A later decision for the same request id (routed again once its idempotent answer expired,
perhaps by a retrained classifier or after a reload) does not move the request to another task:
its feedback, and the history it feeds, stay where they were. The model is the last one that
answered (the answer the caller has).

It also holds the score in force of each (request, scorer key): one score per scorer and request,
a later one (by event time, then offset) replacing it in the aggregates. Bounded like the rest:
at most `max_scorers_per_request` keyed scorers a request, and gone with the request.

Bounded memory: entries are kept in offset order and the oldest are evicted once the index holds
`max_requests`, or once their request is older than `horizon_s` (event time, against the
partition's watermark). Feedback for an evicted or unknown request cannot be attributed and is
dropped (counted). The index is not snapshotted: after a restart it is rebuilt by re-reading the
partition from `start_offset()` (see partition.py). The scores in force are rebuilt by the same
replay: every feedback event of a request comes after the request's first event (the router
serves a request before it can be scored), so re-reading from the oldest request kept re-reads
all of them, and the replay applies the same rules in the same order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from consumers.quality.access import NOBODY, Party


@dataclass(frozen=True, slots=True)
class JoinConfig:
    horizon_s: float = 6 * 3600.0  # feedback later than this after its request is not attributed
    max_requests: int = 200_000  # per partition; ~150 bytes each (more with scores in force)
    max_scorers_per_request: int = 16  # keyed scorers; further ones are dropped (counted)


@dataclass(frozen=True, slots=True)
class ScoreInForce:
    """One scorer's current score of one request, and where it was counted."""

    event_time_s: float
    offset: int
    micros: int
    day: int  # UTC day start it was counted in
    dimension: str  # quality key it was counted under
    bucket: str  # the scorer name in that dimension's sums (the key id, or the overflow bucket)

    def precedes(self, event_time_s: float, offset: int) -> bool:
        """Whether a score at (event_time_s, offset) is later than this one: the last one wins."""
        return (self.event_time_s, self.offset) < (event_time_s, offset)


@dataclass(slots=True)
class RequestFacts:
    offset: int  # of the request's first event we saw
    event_time_s: float
    task_type: str = ""
    model: str = ""
    owner: Party = NOBODY
    scores: dict[str, ScoreInForce] = field(default_factory=dict)  # scorer key id -> score


class RequestIndex:
    __slots__ = ("_config", "_requests")

    def __init__(self, config: JoinConfig = JoinConfig()) -> None:
        self._config = config
        self._requests: OrderedDict[str, RequestFacts] = OrderedDict()

    def note_task(
        self, request_id: str, task_type: str, offset: int, event_time_s: float, owner: Party = NOBODY
    ) -> None:
        facts = self._facts(request_id, offset, event_time_s)
        if not facts.task_type:  # the first decision's task stays (see the module docstring)
            facts.task_type = task_type
        if owner.key_id and not facts.owner.key_id:
            facts.owner = owner

    def note_model(
        self, request_id: str, model: str, offset: int, event_time_s: float, owner: Party = NOBODY
    ) -> None:
        facts = self._facts(request_id, offset, event_time_s)
        facts.model = model
        if owner.key_id and not facts.owner.key_id:
            facts.owner = owner

    def joined(self, request_id: str) -> RequestFacts | None:
        """The request's facts once both its decision and completion were seen, else None."""
        facts = self._requests.get(request_id)
        if facts is None or not facts.task_type or not facts.model:
            return None
        return facts

    def lookup(self, request_id: str) -> tuple[str, str] | None:
        """(task_type, model), or None unless both the decision and the completion were seen."""
        facts = self._requests.get(request_id)
        if facts is None or not facts.task_type or not facts.model:
            return None
        return facts.task_type, facts.model

    def evict(self, watermark_s: float) -> None:
        oldest_kept = watermark_s - self._config.horizon_s
        requests = self._requests
        while requests:
            facts = next(iter(requests.values()))
            if len(requests) <= self._config.max_requests and facts.event_time_s >= oldest_kept:
                return
            requests.popitem(last=False)

    def start_offset(self) -> int | None:
        for facts in self._requests.values():
            return facts.offset
        return None

    def __len__(self) -> int:
        return len(self._requests)

    def _facts(self, request_id: str, offset: int, event_time_s: float) -> RequestFacts:
        facts = self._requests.get(request_id)
        if facts is None:
            facts = self._requests[request_id] = RequestFacts(offset, event_time_s)
        return facts
