"""Store operations of one event-loop turn, sent to Redis as ONE script call.

Each operation is a JSON text (one ARGV entry) and the script (redis_store.py) runs them in the
order they were asked, each atomic on its own (the whole call is atomic, which is stronger), and
answers one JSON array, one entry per operation. In redis-py most of a call's cost is the client's
own Python, per command and per argument: a turn's 32 reserves and settles as one command of 32
arguments cost a fraction of 32 EVALSHAs (bench/governance.py has the numbers).

Urgent operations (reserve: a caller waits) go out on the next loop turn. Settles are not urgent
(the reservation already holds the money; nobody waits but the bookkeeping): they linger up to
`linger_s` and ride along with the next reserve, so a steady stream of requests costs one round trip
each, not two. A settle is never dropped silently: when `max_pending` settles are already waiting
(the store is slow or down), a new one fails at once with `StoreUnavailableError` and the governor
counts it as lost, as it does when the store does not answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from router_service.limits.store import StoreUnavailableError

MAX_BATCH = 256  # operations per script call: a longer one would hold Redis from other clients
_Op = tuple[str, "asyncio.Future[Any]"]


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
        self._redis = client
        self._source = source
        self._sha: str | None = None
        self._keys = list(keys)  # the script's KEYS
        self._args = list(args)  # its ARGV before the operations
        self._linger_s = linger_s
        self._max_pending = max_pending
        self._queue: list[_Op] = []
        self._soon: asyncio.Handle | None = None
        self._later: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, op: str, *, urgent: bool = True) -> asyncio.Future[Any]:
        """Queue one operation (its JSON text); the future gets its answer (decoded JSON)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not urgent and len(self._queue) >= self._max_pending:
            future.set_exception(StoreUnavailableError("limits store: too many settles waiting"))
            return future
        self._queue.append((op, future))
        if urgent or len(self._queue) >= MAX_BATCH:
            if self._soon is None:
                self._soon = loop.call_soon(self._flush)
        elif self._later is None and self._soon is None:
            self._later = loop.call_later(self._linger_s, self._flush)
        return future

    async def drain(self) -> None:
        """Send what waits now and wait for every call in flight."""
        if self._queue:
            self._flush()
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    def _flush(self) -> None:
        for handle in (self._soon, self._later):
            if handle is not None:
                handle.cancel()
        self._soon = self._later = None
        batch, self._queue = self._queue, []
        loop = asyncio.get_running_loop()
        for i in range(0, len(batch), MAX_BATCH):
            task = loop.create_task(self._send(batch[i : i + MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Op]) -> None:
        try:
            answers = await self._execute([op for op, _ in batch])
        except (RedisError, OSError, ValueError) as exc:
            failure = StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue  # the caller gave up waiting
            if isinstance(answer, dict):  # {"error": "..."}: this operation failed in the script
                future.set_exception(StoreUnavailableError(f"limits store: script: {answer.get('error')}"))
            else:
                future.set_result(answer)

    async def _execute(self, ops: list[str]) -> list[Any]:
        if self._sha is None:
            self._sha = str(await self._redis.script_load(self._source))
        try:
            raw = await self._evalsha(ops)
        except NoScriptError:  # the server restarted or flushed its scripts: nothing ran
            self._sha = str(await self._redis.script_load(self._source))
            raw = await self._evalsha(ops)
        answers: list[Any] = json.loads(raw)
        if len(answers) != len(ops):
            raise ValueError(f"{len(answers)} answers to {len(ops)} operations")
        return answers

    async def _evalsha(self, ops: list[str]) -> Any:
        assert self._sha is not None
        return await self._redis.evalsha(self._sha, len(self._keys), *self._keys, *self._args, *ops)
