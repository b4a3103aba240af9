"""Incremental Server-Sent Events parser (WHATWG HTML "event stream" interpretation).

Pure: bytes in, events out. Handles events split across chunks, CRLF/LF/CR line endings,
comment lines (keep-alives), multi-line `data:` fields and a UTF-8 character split across chunks.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # "message" when the stream gave no `event:` field
    data: str
    id: str = ""


class SSEParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id = ""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if not text:
            # An empty chunk (or half a UTF-8 character) must not forget a CR that may pair with an LF.
            return []
        if self._pending_cr and text.startswith("\n"):
            # The CR that ended the previous chunk and this LF are one CRLF line break.
            text = text[1:]
        self._pending_cr = text.endswith("\r")
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
        return event


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Parse an async byte stream into SSE events. An unterminated final event is dropped,
    as the spec requires: a stream cut mid-event must not yield half an event."""
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
