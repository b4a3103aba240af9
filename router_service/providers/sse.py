"""Incremental Server-Sent Events parser (WHATWG HTML "event stream" interpretation).

Pure: bytes in, events out. Handles events split across chunks, CRLF/LF/CR line endings,
comment lines (keep-alives), multi-line `data:` fields and a UTF-8 character split across chunks.

Bounded: a line longer than `max_line_bytes` (counted in bytes, before decoding), or an event whose
data adds up to more than that many characters, raises BAD_RESPONSE instead of buffering without end:
an upstream that never sends a newline must not grow the router's memory.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator

from router_service.errors import ErrorClass, ProviderError

# No real event is near this (one chunk carries one token or one tool-call fragment).
DEFAULT_MAX_LINE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # "message" when the stream gave no `event:` field
    data: str
    id: str = ""


class SSEParser:
    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._data_chars = 0
        self._id = ""
        self._pending_cr = False
        self._max = max_line_bytes
        self._line_bytes = 0  # bytes since the last line break

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._count_line(chunk)
        text = self._decoder.decode(chunk)
        if not text:
            # An empty chunk (or half a UTF-8 character) must not forget a CR that may pair with an LF.
            return []
        if self._pending_cr and text.startswith("\n"):
            # The CR that ended the previous chunk and this LF are one CRLF line break.
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        if "\n" not in text and "\r" not in text:
            self._buffer += text  # still inside one line: nothing to split (and no rescanning)
            return []
        self._buffer += text
        events: list[SSEEvent] = []
        lines = self._buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop()  # an unterminated last line waits for more bytes
        for line in lines:
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def _process_line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_chars += len(value)
            if self._data_chars > self._max:
                raise _too_long("event data", self._max)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored: reconnection is not ours to do.
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(event=self._event or "message", data="\n".join(self._data), id=self._id)
        self._event = ""
        self._data = []
        self._data_chars = 0
        return event

    def _count_line(self, chunk: bytes) -> None:
        """Bytes since the last line break, checked against the bound before anything is kept."""
        last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if last < 0:
            self._line_bytes += len(chunk)
        else:
            first = min(i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0)
            # The line this chunk ends, and any whole line inside it, may be over the bound too.
            if self._line_bytes + first > self._max or (
                last - first > self._max and _longest_line(chunk[first + 1 : last]) > self._max
            ):
                raise _too_long("line", self._max)
            self._line_bytes = len(chunk) - last - 1
        if self._line_bytes > self._max:
            raise _too_long("line", self._max)


def _longest_line(lines: bytes) -> int:
    return max(map(len, lines.replace(b"\r", b"\n").split(b"\n")))


def _too_long(what: str, limit: int) -> ProviderError:
    return ProviderError(ErrorClass.BAD_RESPONSE, f"upstream stream {what} longer than {limit} bytes")


async def iter_sse(
    chunks: AsyncIterable[bytes], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> AsyncIterator[SSEEvent]:
    """Parse an async byte stream into SSE events. An unterminated final event is dropped,
    as the spec requires: a stream cut mid-event must not yield half an event."""
    parser = SSEParser(max_line_bytes)
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
