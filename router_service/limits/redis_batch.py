"""Store operations sent to Redis as ONE script call per round trip, on one connection of their own.

Each operation is a JSON text (one ARGV entry) and the script (redis_store.py) runs them in the
order they were asked, each atomic on its own (the whole call is atomic, which is stronger), and
answers one JSON array, one entry per operation.

One sender task owns one connection and keeps at most one script call in flight: what is asked
while a call is out goes together in the next one, so under load the batches grow instead of the
round trips (bench/governance.py, bench/overhead.py --limits-only have the numbers). It writes
and reads that connection through redis-py's public `Connection` calls (pack_command,
send_packed_command, read_response), not through `Redis.execute_command`: no pool lock, retry
wrapper or response callback per call, and the timeout is one `asyncio.timeout` around the round
trip instead of a task per write (redis-py's `asyncio.wait_for`) plus a timer per read. The
timeout counts from when an operation was asked, its wait behind the call in flight included, so
behind a hung store no caller waits longer than it (an operation out of time is failed unsent). A
call that times out or breaks closes the connection (its answer could arrive later, out of step);
the next call opens a new one.

Urgent operations (reserve: a caller waits) wake the sender at once. Settles are not urgent (the
reservation already holds the money; nobody waits but the bookkeeping): they linger up to
`linger_s` and ride along with the next reserve, so a steady stream of requests costs one round
trip each, not two. A settle is never dropped silently: when `max_pending` settles are already
waiting (the store is slow or down), a new one fails at once with `StoreUnavailableError` and the
governor counts it as lost, as it does when the store does not answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from router_service.limits.store import StoreUnavailableError

log = logging.getLogger(__name__)
MAX_BATCH = 256  # operations per script call: a longer one would hold Redis from other clients
_Op = tuple[str, "asyncio.Future[Any]", float]  # the operation, its answer, when it was asked


class OpBatcher:
    def __init__(
        self,
        client: Redis,
        source: str,
        keys: Sequence[str],
        args: Sequence[str],
        *,
        linger_s: float = 0.002,
        max_pending: int = 10_000,
    ) -> None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        # The round trip's own timeout replaces the connection's (see the module docstring).
        self._timeout_s: float | None = kwargs.pop("socket_timeout", None)
        self._connection: AbstractConnection = pool.connection_class(**kwargs)
        self._source = source
        self._sha: str | None = None
        self._head = [len(keys), *keys, *args]  # EVALSHA's arguments before the operations
        self._linger_s = linger_s
        self._max_pending = max_pending
        self._queue: list[_Op] = []
        self._urgent = False  # something in the queue has a caller waiting
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued to send now, nothing in flight
        self._idle.set()
        self._later: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        self._closed = False

    def call(self, op: str, *, urgent: bool = True) -> asyncio.Future[Any]:
        """Queue one operation (its JSON text); the future gets its answer (decoded JSON)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(StoreUnavailableError("limits store: closed"))
            return future
        if not urgent and len(self._queue) >= self._max_pending:
            future.set_exception(StoreUnavailableError("limits store: too many settles waiting"))
            return future
        self._queue.append((op, future, loop.time()))
        if urgent or len(self._queue) >= MAX_BATCH:
            self._send_now()
        elif self._later is None and not self._urgent:
            self._later = loop.call_later(self._linger_s, self._send_now)
        return future

    async def drain(self) -> None:
        """Send what waits now and wait until it and the call in flight are answered."""
        if self._queue:
            self._send_now()
        await self._idle.wait()

    async def aclose(self) -> None:
        """Drain, refuse new operations, stop the sender and close the connection. An operation
        asked while the last answers land (a settle task's) is still sent: drain until none is
        left; whatever the sender still held when cancelled is failed, never left waiting."""
        while self._queue or not self._idle.is_set():
            await self.drain()
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        self._fail(self._queue, StoreUnavailableError("limits store: closed"))
        self._queue = []
        await self._connection.disconnect()

    def _send_now(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        self._urgent = True
        self._idle.clear()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # One call in flight: what is asked meanwhile waits for the answer, then goes together.
            while self._urgent and self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                # What is left past one full batch may hold reserves (callers waiting): send it
                # next, not after the settles' linger (settles going early do no harm).
                self._urgent = bool(self._queue)
                await self._send(batch)
            if self._queue and self._later is None and not self._urgent:
                self._later = asyncio.get_running_loop().call_later(self._linger_s, self._send_now)
            if not self._urgent:
                self._idle.set()

    async def _send(self, batch: list[_Op]) -> None:
        if self._timeout_s is not None:
            # Each operation gets the timeout from when it was asked, waiting behind a call in
            # flight included: behind a hung store the queue must not make callers wait longer.
            now = asyncio.get_running_loop().time()
            late = [entry for entry in batch if now - entry[2] >= self._timeout_s]
            if late:
                self._fail(late, StoreUnavailableError("limits store: TimeoutError: waited behind a call"))
                batch = batch[len(late) :]  # the oldest are first
                if not batch:
                    return
        try:
            answers = await self._execute([op for op, _, _ in batch], batch[0][2])
        except asyncio.CancelledError:  # aclose() stopped the sender with this call out
            self._fail(batch, StoreUnavailableError("limits store: closed"))
            raise
        except Exception as exc:
            if not isinstance(exc, RedisError | OSError | ValueError):  # TimeoutError is an OSError
                # Still fail the batch's callers (they would wait forever), but say it was a bug.
                log.exception("limits store: unexpected failure of a script call")
            self._fail(batch, StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}"))
            return
        for (_, future, _), answer in zip(batch, answers, strict=True):
            if future.done():
                continue  # the caller gave up waiting
            if isinstance(answer, dict):  # {"error": "..."}: this operation failed in the script
                future.set_exception(StoreUnavailableError(f"limits store: script: {answer.get('error')}"))
            else:
                future.set_result(answer)

    @staticmethod
    def _fail(batch: list[_Op], failure: StoreUnavailableError) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(failure)

    async def _execute(self, ops: list[str], oldest_asked: float) -> list[Any]:
        deadline = None if self._timeout_s is None else oldest_asked + self._timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                raw = await self._evalsha(ops)
        except ResponseError:
            raise  # an error reply: the connection is still in step
        except BaseException:
            # Timed out or broken mid-call: an answer may still come, out of step with the next.
            await self._connection.disconnect(nowait=True)
            raise
        answers: list[Any] = json.loads(raw)
        if len(answers) != len(ops):
            raise ValueError(f"{len(answers)} answers to {len(ops)} operations")
        return answers

    async def _evalsha(self, ops: list[str]) -> Any:
        if self._sha is None:
            self._sha = await self._load()
        try:
            return await self._round_trip("EVALSHA", self._sha, *self._head, *ops)
        except NoScriptError:  # the server restarted or flushed its scripts: nothing ran
            self._sha = await self._load()
            return await self._round_trip("EVALSHA", self._sha, *self._head, *ops)

    async def _load(self) -> str:
        sha = await self._round_trip("SCRIPT", "LOAD", self._source)
        return sha.decode() if isinstance(sha, bytes) else str(sha)

    async def _round_trip(self, *command: Any) -> Any:
        connection = self._connection
        await connection.send_packed_command(connection.pack_command(*command), check_health=False)
        return await connection.read_response()  # raises an error reply (ResponseError)
