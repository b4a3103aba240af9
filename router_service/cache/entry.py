"""A cached answer, and what the engine makes of it on a hit. Pure.

An entry is the final answer of one call (content, tool calls, finish reason, usage, the
deployment that answered and when), nothing about who asked: the key says that. A hit answers
with that message and the real usage at zero cost (`cost_nanos` 0; what the call would have cost
is `saved_cost_nanos`), and no attempts, since nothing went upstream.

A stream is stored only when it ended cleanly: `StreamCapture` builds an entry from the items the
engine yielded, and has none unless a `StreamFinish` arrived (a failed or interrupted stream is
never stored). A hit on a `Stream` call replays the entry as the same sequence a live stream
yields: `StreamStart`, the text as one delta, each tool call as one delta, `StreamFinish`; the
Streams that followed an identical live one (coalesced) replay its text deltas as it cut them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router_service.call import CacheHit, Completion, StreamFinish, StreamStart
from router_service.catalog import Deployment
from router_service.domain import (
    ChatResult,
    FinishReason,
    Message,
    Role,
    RouteDecision,
    StreamDone,
    StreamEvent,
    TaskType,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

ReplayItem = StreamStart | StreamEvent | StreamFinish  # the engine's StreamItem


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: FinishReason
    usage: Usage
    deployment: str  # "provider/model", the deployment that answered
    upstream_model: str
    created_at: float  # Unix seconds (wall clock: entries are shared across replicas)
    # The task routing classified the request as: a hit reports it without classifying again
    # (None: an entry written before this field, or by a caller that had no decision).
    task_type: TaskType | None = None
    # The text as the live stream's deltas cut it, for the Streams that followed that one call
    # (coalesced): they replay the very deltas it relayed. Never stored (the codec keeps only
    # `content`), so a later hit replays the text as one delta. Empty: one delta of `content`.
    text_chunks: tuple[str, ...] = field(default=(), compare=False, repr=False)
    # The answer as a hit on `Complete` returns it, made once per entry (decoded entries of hot
    # keys are kept), not once per hit.
    result: ChatResult = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        message = Message(Role.ASSISTANT, self.content, self.tool_calls)
        result = ChatResult(message, self.finish_reason, self.usage, self.upstream_model)
        object.__setattr__(self, "result", result)

    def age_s(self, now: float) -> float:
        """Seconds since the answer was made; never negative (replicas' clocks differ a little)."""
        return max(0.0, now - self.created_at)


def from_completion(completion: Completion, now: float) -> CachedAnswer:
    result = completion.result
    return CachedAnswer(
        content=result.message.content,
        tool_calls=result.message.tool_calls,
        finish_reason=result.finish_reason,
        usage=result.usage,
        deployment=completion.deployment.key,
        upstream_model=result.upstream_model,
        created_at=now,
        task_type=completion.decision.task_type,
    )


def as_completion(
    entry: CachedAnswer, deployment: Deployment, decision: RouteDecision, age_s: float = 0.0
) -> Completion:
    """The answer of a hit on `Complete`: no attempts, zero cost, marked as a hit this old."""
    hit = CacheHit(age_s, saved_cost_nanos(entry, deployment))
    return Completion(entry.result, deployment, decision, (), 0, hit)


def replay(
    entry: CachedAnswer, deployment: Deployment, decision: RouteDecision, age_s: float = 0.0
) -> list[ReplayItem]:
    """The items of a hit on `Stream`, in the order a live stream yields them."""
    hit = CacheHit(age_s, saved_cost_nanos(entry, deployment))
    items: list[ReplayItem] = [StreamStart(deployment, decision, (), hit)]
    if entry.text_chunks:
        items += [TextDelta(text) for text in entry.text_chunks]
    elif entry.content:
        items.append(TextDelta(entry.content))
    items += [ToolCallDelta(i, c.id, c.name, c.arguments_json) for i, c in enumerate(entry.tool_calls)]
    done = StreamDone(entry.finish_reason, entry.usage, entry.upstream_model)
    items.append(StreamFinish(done, deployment, decision, (), 0, hit))
    return items


def saved_cost_nanos(entry: CachedAnswer, deployment: Deployment) -> int:
    """What the hit would have cost at the deployment's current price."""
    return deployment.price.cost_nanos(entry.usage)


class StreamCapture:
    """Collects a live stream's items; `answer` is an entry only if the stream finished cleanly."""

    __slots__ = ("_calls", "_finish", "_text")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self._finish: StreamFinish | None = None

    def add(self, item: ReplayItem) -> None:
        if isinstance(item, TextDelta):
            self._text.append(item.text)
        elif isinstance(item, ToolCallDelta):
            call = self._calls.setdefault(item.index, ["", "", ""])
            call[0] = call[0] or item.id
            call[1] = call[1] or item.name
            call[2] += item.arguments_fragment
        elif isinstance(item, StreamFinish):
            self._finish = item

    def answer(self, now: float) -> CachedAnswer | None:
        finish = self._finish
        if finish is None:
            return None
        calls = tuple(ToolCall(c[0], c[1], c[2]) for _, c in sorted(self._calls.items()))
        done = finish.done
        return CachedAnswer(
            content="".join(self._text),
            tool_calls=calls,
            finish_reason=done.finish_reason,
            usage=done.usage,
            deployment=finish.deployment.key,
            upstream_model=done.upstream_model,
            created_at=now,
            task_type=finish.decision.task_type,
            text_chunks=tuple(self._text),
        )
