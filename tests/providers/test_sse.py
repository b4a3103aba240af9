"""SSEParser and iter_sse: framing, line endings and field handling, as tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from router_service.providers.sse import SSEEvent, SSEParser, iter_sse


def feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def msg(data: str, event: str = "message", id: str = "") -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id)


EURO = "€".encode()  # three bytes


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # line endings
        pytest.param([b"data: a\n\n"], [msg("a")], id="lf"),
        pytest.param([b"data: a\r\n\r\n"], [msg("a")], id="crlf"),
        pytest.param([b"data: a\r\r"], [msg("a")], id="cr"),
        pytest.param([b"data: a\r\ndata: b\rdata: c\n\n"], [msg("a\nb\nc")], id="mixed-endings"),
        pytest.param([b"data: a\r", b"\n\r", b"\n"], [msg("a")], id="crlf-split-between-cr-and-lf"),
        pytest.param(
            [b"data: a\r", b"", b"\ndata: b\r\n\r\n"], [msg("a\nb")], id="empty-chunk-between-cr-and-lf"
        ),
        pytest.param([b"data: a\r", b"\r"], [msg("a")], id="cr-then-cr-is-a-blank-line"),
        # chunking
        pytest.param(
            [bytes([b]) for b in b"data: a\n\ndata: b\n\n"], [msg("a"), msg("b")], id="one-byte-chunks"
        ),
        pytest.param(
            [b"da", b"ta: hel", b"lo\n", b"\nda", b"ta: x\n\n"], [msg("hello"), msg("x")], id="split-fields"
        ),
        pytest.param([b"data: \xc3", b"\xa9\n\n"], [msg("é")], id="split-two-byte-utf8"),
        pytest.param(
            [b"data: " + EURO[:1], EURO[1:2], EURO[2:] + b"\n\n"], [msg("€")], id="split-three-byte-utf8"
        ),
        pytest.param([b"data: \xff\n\n"], [msg("\ufffd")], id="invalid-utf8-replaced"),
        # comments and empty events
        pytest.param([b": ping\n\n"], [], id="comment-only"),
        pytest.param([b": ping\n\ndata: a\n: keep-alive\n\n"], [msg("a")], id="comments-around-data"),
        pytest.param([b"\n\n\n"], [], id="blank-lines-only"),
        pytest.param([b"event: ping\n\n"], [], id="event-without-data"),
        # fields
        pytest.param([b"event: delta\ndata: x\n\n"], [msg("x", "delta")], id="event-field"),
        pytest.param(
            [b"event: delta\ndata: x\n\ndata: y\n\n"], [msg("x", "delta"), msg("y")], id="event-type-resets"
        ),
        pytest.param([b"event: ping\n\ndata: y\n\n"], [msg("y")], id="event-type-resets-without-data"),
        pytest.param([b"data: a\ndata: b\ndata: c\n\n"], [msg("a\nb\nc")], id="multiple-data-lines"),
        pytest.param([b"data:a\n\n"], [msg("a")], id="no-space-after-colon"),
        pytest.param([b"data:  a\n\n"], [msg(" a")], id="only-one-space-stripped"),
        pytest.param([b"data\n\n"], [msg("")], id="field-without-colon"),
        pytest.param([b"data:\ndata:\n\n"], [msg("\n")], id="empty-data-lines"),
        pytest.param([b"data: a: b\n\n"], [msg("a: b")], id="colon-in-value"),
        pytest.param(
            [b"id: 7\ndata: x\n\ndata: y\n\n"], [msg("x", id="7"), msg("y", id="7")], id="id-persists"
        ),
        pytest.param([b"id: a\x00b\ndata: x\n\n"], [msg("x")], id="id-with-nul-ignored"),
        pytest.param([b"retry: 1000\nfoo: bar\ndata: x\n\n"], [msg("x")], id="unknown-fields-ignored"),
        pytest.param([b"data: a\n"], [], id="unterminated-event-waits"),
    ],
)
def test_parser(chunks: list[bytes], expected: list[SSEEvent]) -> None:
    assert feed_all(chunks) == expected


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"data: a\n\n", b"data: b\n\n"], [msg("a"), msg("b")], id="complete"),
        pytest.param([b"data: a\n\n", b"data: b\n"], [msg("a")], id="unterminated-final-event-dropped"),
        pytest.param([b"data: a\n\n", b"data: b"], [msg("a")], id="unterminated-final-line-dropped"),
        pytest.param([], [], id="empty-stream"),
    ],
)
async def test_iter_sse(chunks: list[bytes], expected: list[SSEEvent]) -> None:
    assert [event async for event in iter_sse(_aiter(chunks))] == expected
