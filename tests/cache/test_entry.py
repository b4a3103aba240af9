"""Entries: a hit's Completion and stream replay (zero cost, real usage), capture of a live stream
(stored only when it finished), and the byte codec (compressed, bound to its key, bounded)."""

from __future__ import annotations

import dataclasses
import zlib

import pytest

from router_service.cache import codec
from router_service.cache.entry import (
    ReplayItem,
    StreamCapture,
    as_completion,
    from_completion,
    replay,
    saved_cost_nanos,
)
from router_service.call import CacheHit, StreamFinish, StreamStart
from router_service.domain import (
    FinishReason,
    RouteDecision,
    StreamDone,
    TaskType,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from tests.cache.helpers import answer, deployment

DECISION = RouteDecision("default", "priority", TaskType.CHAT, ("openai/gpt-small",), ())
DONE = StreamDone(FinishReason.STOP, answer().usage, "gpt-small-2026")


def test_a_hit_on_complete_answers_the_entry_with_zero_cost_and_no_attempts() -> None:
    entry = answer("four")
    completion = as_completion(entry, deployment(), DECISION)
    assert completion.result.message.content == "four"
    assert completion.result.message.tool_calls == entry.tool_calls
    assert completion.result.usage == entry.usage
    assert completion.result.finish_reason is FinishReason.STOP
    assert (completion.cost_nanos, completion.attempts) == (0, ())
    assert completion.cache_hit == CacheHit(0.0, saved_cost_nanos(entry, deployment()))
    # Stored again, the entry also records the task routing classified the request as.
    stored = from_completion(completion, entry.created_at)
    assert stored == dataclasses.replace(entry, task_type=TaskType.CHAT)


def test_a_hit_says_how_old_its_answer_is_and_what_it_saved() -> None:
    entry = answer("four")
    saved = saved_cost_nanos(entry, deployment())
    assert as_completion(entry, deployment(), DECISION, 42.5).cache_hit == CacheHit(42.5, saved)
    items = replay(entry, deployment(), DECISION, 7.0)
    assert [i.cache_hit for i in items if isinstance(i, StreamStart | StreamFinish)] == [
        CacheHit(7.0, saved),
        CacheHit(7.0, saved),
    ]


def test_the_saved_cost_is_the_usage_at_the_deployments_price() -> None:
    # 10 uncached input at 1 USD/M, 2 cached at 0.5 USD/M, 3 output at 4 USD/M, in nano-USD
    assert saved_cost_nanos(answer(), deployment()) == 10_000 + 1_000 + 12_000


def test_a_replay_is_routing_then_deltas_then_the_end() -> None:
    entry = answer("The answer is 4.")
    items = replay(entry, deployment(), DECISION)
    hit = CacheHit(0.0, saved_cost_nanos(entry, deployment()))
    assert items == [
        StreamStart(deployment(), DECISION, (), hit),
        TextDelta("The answer is 4."),
        ToolCallDelta(0, "call_1", "lookup", '{"q":"x"}'),
        StreamFinish(DONE, deployment(), DECISION, (), 0, hit),
    ]


def test_a_replay_of_an_answer_without_text_has_no_empty_delta() -> None:
    items = replay(answer(""), deployment(), DECISION)
    assert [type(i) for i in items] == [StreamStart, ToolCallDelta, StreamFinish]


def test_a_captured_stream_that_finished_is_the_entry_its_replay_gives_back() -> None:
    entry = dataclasses.replace(answer("Hello there"), task_type=DECISION.task_type)
    live = [
        StreamStart(deployment(), DECISION, ()),
        TextDelta("Hel"),
        ToolCallDelta(0, "call_1", "lookup", '{"q":'),
        TextDelta("lo there"),
        ToolCallDelta(0, arguments_fragment='"x"}'),
        StreamFinish(DONE, deployment(), DECISION, (), 9),
    ]
    capture = StreamCapture()
    for item in live:
        capture.add(item)
    captured = capture.answer(entry.created_at)
    assert captured == entry
    again = StreamCapture()
    for item in replay(entry, deployment(), DECISION):
        again.add(item)
    assert again.answer(entry.created_at) == entry


def test_followers_of_a_live_stream_replay_its_deltas_as_it_cut_them() -> None:
    live: list[ReplayItem] = [
        StreamStart(deployment(), DECISION, ()),
        TextDelta("Hel"),
        TextDelta("lo "),
        TextDelta("there"),
        StreamFinish(DONE, deployment(), DECISION, (), 9),
    ]
    capture = StreamCapture()
    for item in live:
        capture.add(item)
    captured = capture.answer(0.0)
    assert captured is not None and captured.content == "Hello there"
    replayed = replay(captured, deployment(), DECISION)
    assert [i for i in replayed if isinstance(i, TextDelta)] == live[1:4]
    # What is stored is the text alone: a later hit replays it as one delta.
    stored = codec.decode(KEY, codec.encode(KEY, captured), 1 << 20)
    assert stored == captured and stored.text_chunks == ()
    assert [i for i in replay(stored, deployment(), DECISION) if isinstance(i, TextDelta)] == [
        TextDelta("Hello there")
    ]


def test_a_stream_that_never_finished_gives_no_entry() -> None:
    capture = StreamCapture()
    capture.add(StreamStart(deployment(), DECISION, ()))
    capture.add(TextDelta("partial"))
    assert capture.answer(0.0) is None


def test_age_is_never_negative() -> None:
    entry = answer(created_at=100.0)
    assert entry.age_s(90.0) == 0.0
    assert entry.age_s(102.5) == 2.5


# --- codec --------------------------------------------------------------------------------------

KEY = "a" * 64


def test_an_entry_round_trips_through_its_compressed_bytes() -> None:
    entry = dataclasses.replace(answer("ünïcödé " * 200), usage=Usage(1, 2, 0))
    data = codec.encode(KEY, entry)
    assert len(data) < len(entry.content.encode()) / 5  # compressed
    assert codec.decode(KEY, data, 1 << 20) == entry
    # The task type rides along when known; an entry written without one still decodes (None).
    typed = dataclasses.replace(entry, task_type=TaskType.CODE)
    assert codec.decode(KEY, codec.encode(KEY, typed), 1 << 20) == typed


def test_a_value_under_another_key_is_refused() -> None:
    data = codec.encode(KEY, answer())
    with pytest.raises(codec.CorruptEntryError, match="another key"):
        codec.decode("b" * 64, data, 1 << 20)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02whatever",
        b"\x01not zlib",
        b"\x01" + zlib.compress(b"[1, 2]"),
        b"\x01" + zlib.compress(b'{"k": "' + KEY.encode() + b'"}'),
        codec.encode(KEY, answer())[:-4],  # truncated
    ],
)
def test_unreadable_values_are_corrupt_entries(data: bytes) -> None:
    with pytest.raises(codec.CorruptEntryError):
        codec.decode(KEY, data, 1 << 20)


def test_a_value_that_inflates_past_its_bound_is_refused() -> None:
    data = codec.encode(KEY, answer("x" * 100_000))
    with pytest.raises(codec.CorruptEntryError, match="bound"):
        codec.decode(KEY, data, 10_000)
