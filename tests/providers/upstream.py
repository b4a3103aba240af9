"""The one fake upstream for provider tests: a real HTTP/1.1 server on 127.0.0.1, port 0.

Each request takes the next scripted `Reply` (or the standing one) and is recorded as it arrived. A
reply is a status, headers and a body written in exactly the pieces given (lazily, so a generator can
stand for a body too large to build), framed by content-length, chunked encoding or connection close,
and then finished, cut (the socket closed mid-answer) or left hanging. `raw` bytes replace the whole
answer, for garbage and for faults before any header. The server speaks plain sockets rather than
a web framework so that every fault a real upstream can produce is expressible, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from router_service.config_schema import HttpConfig
from router_service.providers.http import make_http_client

Framing = Literal["length", "chunked", "close"]
Ending = Literal["finish", "cut", "hang"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS |= {503: "Service Unavailable", 529: "Overloaded"}


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    `framing` None means content-length for a bytes body and chunked for an iterable of pieces.
    `end`: "finish" completes the answer; "cut" closes the socket after the pieces (mid-body when the
    framing promised more); "hang" sends nothing more and waits for the client to go away."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Sequence[tuple[str, str]] = ()
    framing: Framing | None = None
    end: Ending = "finish"
    raw: bytes | None = None


Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def _pairs(headers: Headers) -> tuple[tuple[str, str], ...]:
    return tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)


def json_reply(body: Any, status: int = 200, headers: Headers = ()) -> Reply:
    """`body` as JSON: bytes are sent as they are (valid JSON or not), anything else is serialized."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, data, (("content-type", "application/json"), *_pairs(headers)))


def sse_reply(
    pieces: Iterable[bytes], status: int = 200, end: Ending = "finish", headers: Headers = ()
) -> Reply:
    """An event stream, chunk-encoded in exactly `pieces`."""
    return Reply(status, pieces, (("content-type", "text/event-stream"), *_pairs(headers)), "chunked", end)


def sse_stream(data: bytes, chunk_size: int | None = None, end: Ending = "finish") -> Reply:
    """An event stream of `data`, whole or in `chunk_size` pieces."""
    return sse_reply([data] if chunk_size is None else split_every(data, chunk_size), end=end)


def recorded_reply(path: Path) -> Reply:
    """A response recorded as raw HTTP/1.1 (status line, headers, blank line, body), re-framed: the
    recording's own framing headers would not match the body as stored."""
    head, _, body = path.read_bytes().partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    framing_headers = {"content-length", "transfer-encoding", "connection"}
    headers = [
        (n, v) for n, _, v in (line.partition(": ") for line in lines) if n.lower() not in framing_headers
    ]
    return Reply(int(status_line.split()[1]), body, headers)


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# Faults before any response byte.
CLOSE_BEFORE_HEADERS = Reply(raw=b"", end="cut")
SILENT = Reply(raw=b"", end="hang")
GARBAGE = Reply(raw=b"NOT HTTP AT ALL\r\n\r\n", end="cut")
# A body cut short of the content-length its headers promised.
CUT_BODY = Reply(200, [b"partial"], (("content-length", "100"),), "close", "cut")


@dataclass(frozen=True)
class Request:
    """A request as the server read it: `target` is the path with its query string."""

    method: str
    target: str
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeUpstream:
    """`async with FakeUpstream() as upstream`: serves `reply` (standing) after any `script`ed
    one-shot replies; `requests` in arrival order; `body_bytes_sent` counts body bytes the server got
    onto the socket; `disconnects` counts connections the client closed while the server still had
    an answer open (a cut-short stream, a hang)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or Reply(500, b"no reply scripted")
        self.requests: list[Request] = []
        self.body_bytes_sent = 0
        self.disconnects = 0
        self.url = ""
        self._script: list[Reply] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._disconnected = asyncio.Event()

    def script(self, *replies: Reply) -> None:
        """Answers for the next requests, in order, before the standing `reply` again."""
        self._script.extend(replies)

    @property
    def sent(self) -> Any:
        """The JSON body of the last request."""
        return self.requests[-1].json()

    async def wait_disconnect(self, timeout_s: float = 10.0) -> None:
        """Returns once the client has closed a connection with an answer still open. The timeout only
        turns a missing close into a failure instead of a hung test."""
        await asyncio.wait_for(self._disconnected.wait(), timeout_s)

    async def stop_listening(self) -> None:
        """From now on connections are refused, as by an upstream that is down."""
        assert self._server is not None
        self._server.close()

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        for task in list(self._handlers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away mid-exchange: a fault the test itself asked for
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads one request and answers it; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        request = await _read_request(head, reader)
        self.requests.append(request)
        reply = self._script.pop(0) if self._script else self.reply
        try:
            finished = await self._answer(reply, writer)
        except (ConnectionError, OSError):
            self._client_left()
            return False
        if not finished:
            if reply.end == "hang":
                # Until the client closes: EOF, or a reset when it left unread answer bytes behind.
                with contextlib.suppress(ConnectionError, OSError):
                    await reader.read()
                self._client_left()
            return False
        return reply.framing != "close"

    async def _answer(self, reply: Reply, writer: asyncio.StreamWriter) -> bool:
        if reply.raw is not None:
            writer.write(reply.raw)
            await writer.drain()
            return False
        framing = reply.framing or ("length" if isinstance(reply.body, bytes) else "chunked")
        lines = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        if framing == "length":
            assert isinstance(reply.body, bytes), "a content-length reply needs its body whole"
            lines.append(f"content-length: {len(reply.body)}")
        elif framing == "chunked":
            lines.append("transfer-encoding: chunked")
        else:
            lines.append("connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        pieces = [reply.body] if isinstance(reply.body, bytes) else reply.body
        for piece in pieces:
            if not piece:
                continue  # an empty chunk would end a chunked body
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)
            self.body_bytes_sent += len(piece)
            await writer.drain()
        if reply.end != "finish":
            await writer.drain()
            return False
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return framing != "close"

    def _client_left(self) -> None:
        self.disconnects += 1
        self._disconnected.set()


async def _read_request(head: bytes, reader: asyncio.StreamReader) -> Request:
    request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = request_line.split(" ", 2)
    headers = httpx.Headers([(n, v) for n, _, v in (line.partition(": ") for line in lines)])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


@asynccontextmanager
async def serving(reply: Reply | None = None) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(reply) as upstream:
        yield upstream


@asynccontextmanager
async def http_client(**config: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The production HTTP client stack (providers/http.py), with `config` over its defaults."""
    async with make_http_client(HttpConfig(**config)) as client:
        yield client


def with_url(endpoint: Any, upstream: FakeUpstream, path: str = "") -> Any:
    """`endpoint` (a ProviderEndpoint) pointed at `upstream`, under `path`."""
    return dataclasses.replace(endpoint, base_url=upstream.url + path)
