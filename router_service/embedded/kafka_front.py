"""The embedded broker's public port: a Kafka frame relay in front of Tansu.

`python -m router_service.embedded.kafka_front LISTEN_PORT UPSTREAM_PORT` accepts clients on
127.0.0.1:LISTEN_PORT and relays each connection, frame by frame, to Tansu on UPSTREAM_PORT.
Every frame passes unchanged except the answer to an ApiVersions v3+ request, which loses its
default-valued tags (api_versions.py says why: without this, the kcat Debian and Ubuntu ship
cannot talk to Tansu at all). Tansu advertises LISTEN_PORT in its metadata, so clients never see
the upstream port.

A child process of its own, like Tansu, so it outlives any one event loop (the test session's
fixture starts the broker from a throwaway loop) and costs the router's loop nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct
import sys
from collections.abc import Coroutine
from typing import Any

from router_service.embedded.api_versions import (
    MalformedResponseError,
    is_flexible_api_versions,
    strip_default_tags,
)

HOST = "127.0.0.1"
# Reads past this are refused: Tansu's own limit is lower, and a desynchronised stream should fail,
# not allocate gigabytes.
_MAX_FRAME_BYTES = 256 * 1024 * 1024


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One size-prefixed Kafka frame's payload, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    (size,) = struct.unpack(">i", header)
    if not 0 <= size <= _MAX_FRAME_BYTES:
        raise ConnectionError(f"frame size {size} out of range")
    return await reader.readexactly(size)


def _write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(struct.pack(">i", len(payload)) + payload)


async def _requests(client: asyncio.StreamReader, broker: asyncio.StreamWriter, pending: set[bytes]) -> None:
    # Request header: api_key int16, api_version int16, correlation_id int32, ...
    while (frame := await _read_frame(client)) is not None:
        if len(frame) >= 8:
            api_key, api_version = struct.unpack_from(">hh", frame)
            if is_flexible_api_versions(api_key, api_version):
                pending.add(frame[4:8])
        _write_frame(broker, frame)
        await broker.drain()


async def _responses(broker: asyncio.StreamReader, client: asyncio.StreamWriter, pending: set[bytes]) -> None:
    # Response header: correlation_id int32 (ApiVersions always uses header v0, no tags).
    while (frame := await _read_frame(broker)) is not None:
        correlation_id = frame[:4]
        if correlation_id in pending:
            pending.discard(correlation_id)
            with contextlib.suppress(MalformedResponseError):  # then it goes as Tansu sent it
                frame = correlation_id + strip_default_tags(frame[4:])
        _write_frame(client, frame)
        await client.drain()


async def _relay(upstream_port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        broker_r, broker_w = await asyncio.open_connection(HOST, upstream_port)
    except OSError:
        client_w.close()  # Tansu is down: the client sees what it would see without the relay
        return
    pending: set[bytes] = set()
    pumps = [
        asyncio.ensure_future(_requests(client_r, broker_w, pending)),
        asyncio.ensure_future(_responses(broker_r, client_w, pending)),
    ]
    try:
        # Either side ending or failing ends the connection, as one TCP connection would.
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, OSError, asyncio.IncompleteReadError):
                await pump
        for writer in (broker_w, client_w):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def serve(listen_port: int, upstream_port: int) -> None:
    """Relay until SIGTERM/SIGINT, or until the process that started us is gone."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        lambda r, w: _relay(upstream_port, r, w), HOST, listen_port, reuse_address=True
    )
    watch = asyncio.ensure_future(_orphaned(stop))
    async with server:
        await stop.wait()
    watch.cancel()


async def _orphaned(stop: asyncio.Event, poll_s: float = 0.5) -> None:
    # A SIGKILLed owner (a crashed `router-service up`, a killed test run) cannot stop us; without
    # this the relay would hold the public port (9092 for `up`) with nothing behind it.
    parent = os.getppid()
    while True:
        await asyncio.sleep(poll_s)
        if os.getppid() != parent:  # reparented: the owner died
            stop.set()
            return


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # less loop overhead per relayed frame
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
        asyncio.run(main)
        return
    uvloop.run(main)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all(arg.isdigit() for arg in args):
        sys.exit("usage: python -m router_service.embedded.kafka_front LISTEN_PORT UPSTREAM_PORT")
    _run(serve(int(args[0]), int(args[1])))


if __name__ == "__main__":
    main()
