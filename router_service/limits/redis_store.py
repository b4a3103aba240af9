"""Limit counters in Redis, shared by every router replica: one round trip per reserve or settle.

Each operation is one Lua script (redis-py `register_script`: EVALSHA, and the script loaded
again if the server lost it), so the check-and-reserve across every level is atomic: two
replicas can never both take the last dollar. Same semantics as `MemoryLimitStore` (store.py).

Layout, under `prefix` (default "llmrouter:{limits}:": the hash tag puts every key in one slot):
- `c:<counter>`: a hash, `r` = reserved, `u` = used (rolling counters: `u<bucket>` per bucket);
  it expires one window after its own (PEXPIREAT, refreshed on every write).
- `r:<reservation id>`: a hash, counter key -> amount held.
- `reservations`: a sorted set of reservation ids by expiry (ms). Every reserve first gives back
  up to SWEEP_MAX expired reservations: those of a router that died come back after the TTL.

The scripts build the counter keys they sweep from record contents, which Redis Cluster does not
allow in general; with the hash tag every key is in one slot, so it works there too.

Calls made in the same event-loop turn are sent as one pipeline (`_Batcher`): one write and one
read on one connection for all of them, instead of a pooled connection and a command round of
redis-py per call. Each call is still its own EVALSHA, atomic on its own; a lone call (c=1) is
sent on the next loop turn, as before. In redis-py most of a call's cost is the client's own
Python (75 us of CPU per EVALSHA alone here, 22 us in a pipeline of 32).

Needs Redis 7.0 or later (PEXPIRETIME). Amounts are Lua numbers (doubles): exact up to 2^53,
i.e. a budget of up to ~9 million USD in nano-USD per window. The config refuses larger ones.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from router_service.limits.model import Check, Settlement
from router_service.limits.store import ReserveOutcome, StoreUnavailableError

SWEEP_MAX = 64  # expired reservations given back per reserve (the rest on the next ones)
_RECORD_GRACE_MS = 60_000  # a reservation record outlives its expiry a little, for the sweep

# KEYS: reservations zset, this reservation's record, then one counter per check.
# ARGV: now ms, expires_at ms, record key prefix, id, then 5 per check:
#   field, oldest bucket (-1: one field), limit (-1: never refuse), ask, counter expire_at ms (0: never)
_RESERVE = """
local function extend(key, at)
  -- PEXPIREAT only ever later: a late settle carries an older expiry than a rolling counter's.
  local t = redis.call('PEXPIRETIME', key)
  if t < at then
    redis.call('PEXPIREAT', key, at)
  end
end
local now = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, SWEEP_MAX)
for _, id in ipairs(dead) do
  local record = ARGV[3] .. id
  local held = redis.call('HGETALL', record)
  for j = 1, #held, 2 do
    -- Amounts stay strings: Lua prints numbers over 1e14 in exponent form, which HINCRBY refuses.
    if held[j + 1] ~= '0' and redis.call('EXISTS', held[j]) == 1 then
      redis.call('HINCRBY', held[j], 'r', '-' .. held[j + 1])
    end
  end
  redis.call('DEL', record)
  redis.call('ZREM', KEYS[1], id)
end
local n = #KEYS - 2
local out = {1, -1}
for i = 1, n do
  local key = KEYS[i + 2]
  local base = 4 + (i - 1) * 5
  local oldest = tonumber(ARGV[base + 2])
  local current = 0
  if oldest < 0 then
    local got = redis.call('HMGET', key, 'r', 'u')
    current = tonumber(got[1] or '0') + tonumber(got[2] or '0')
  else
    local all = redis.call('HGETALL', key)
    for j = 1, #all, 2 do
      local f = all[j]
      if f == 'r' then
        current = current + tonumber(all[j + 1])
      elseif tonumber(string.sub(f, 2)) < oldest then
        redis.call('HDEL', key, f)
      else
        current = current + tonumber(all[j + 1])
      end
    end
  end
  out[i + 2] = current
  local limit = tonumber(ARGV[base + 3])
  local ask = tonumber(ARGV[base + 4])
  if limit >= 0 and ask > 0 and current + ask > limit then
    out[1] = 0
    out[2] = i - 1
    return out
  end
end
for i = 1, n do
  local key = KEYS[i + 2]
  local base = 4 + (i - 1) * 5
  redis.call('HINCRBY', key, 'r', ARGV[base + 4])
  redis.call('HSET', KEYS[2], key, ARGV[base + 4])
  local expire_at = tonumber(ARGV[base + 5])
  if expire_at > 0 then
    extend(key, expire_at)
  end
end
redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[2]) + RECORD_GRACE_MS)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
return out
""".replace("SWEEP_MAX", str(SWEEP_MAX)).replace("RECORD_GRACE_MS", str(_RECORD_GRACE_MS))

# KEYS: reservations zset, this reservation's record, then one counter per settlement.
# ARGV: id, then 4 per settlement: field, -reserved, actual, counter expire_at ms (0: never)
_SETTLE = """
local function extend(key, at)
  -- PEXPIREAT only ever later: a late settle carries an older expiry than a rolling counter's.
  local t = redis.call('PEXPIRETIME', key)
  if t < at then
    redis.call('PEXPIREAT', key, at)
  end
end
local live = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
for i = 1, #KEYS - 2 do
  local key = KEYS[i + 2]
  local base = 1 + (i - 1) * 4
  local expire_at = tonumber(ARGV[base + 4])
  if live == 1 and ARGV[base + 2] ~= '0' and redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'r', ARGV[base + 2])
  end
  if ARGV[base + 3] ~= '0' then
    redis.call('HINCRBY', key, ARGV[base + 1], ARGV[base + 3])
    if expire_at > 0 then
      extend(key, expire_at)
    end
  end
end
return live
"""


def _ms(t: float) -> int:
    return int(t * 1000)


_Call = tuple[str, list[str], list[str | int], "asyncio.Future[Any]"]


# KEYS[1] the counter; ARGV: floor, expire_at (ms). used := max(used, floor); returns what was added.
_RAISE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'u') or '0')
local floor = tonumber(ARGV[1])
if used >= floor then return 0 end
redis.call('HSET', KEYS[1], 'u', floor)
local t = redis.call('PEXPIRETIME', KEYS[1])
local at = tonumber(ARGV[2])
if at > 0 and (t < 0 or t < at) then redis.call('PEXPIREAT', KEYS[1], at) end
return floor - used
"""


class _Batcher:
    """Script calls of one event-loop turn, sent together as one (non-transactional) pipeline."""

    def __init__(self, client: aioredis.Redis, scripts: Sequence[str]) -> None:
        self._redis = client
        self._sources = {hashlib.sha1(source.encode()).hexdigest(): source for source in scripts}
        self._queue: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def sha(self, source: str) -> str:
        return next(sha for sha, s in self._sources.items() if s == source)

    def call(self, sha: str, keys: list[str], args: list[str | int]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((sha, keys, args, future))
        return future

    async def drain(self) -> None:
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._execute(batch)
        except (RedisError, OSError) as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the caller gave up waiting (its store timeout)
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: Sequence[_Call]) -> list[Any]:
        results = await self._pipeline(batch)
        lost = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if lost:  # the server restarted or flushed its scripts: load them, run those calls again
            for source in self._sources.values():
                await self._redis.script_load(source)
            again = await self._pipeline([batch[i] for i in lost])
            for i, result in zip(lost, again, strict=True):
                results[i] = result
        return results

    async def _pipeline(self, batch: Sequence[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for sha, keys, args, _ in batch:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


class RedisLimitStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "llmrouter:{limits}:") -> None:
        self._redis = client
        self._prefix = prefix
        self._zset = f"{prefix}reservations"
        self._record_prefix = f"{prefix}r:"
        self._batcher = _Batcher(client, (_RESERVE, _SETTLE, _RAISE))
        self._reserve_sha = self._batcher.sha(_RESERVE)
        self._settle_sha = self._batcher.sha(_SETTLE)
        self._raise_sha = self._batcher.sha(_RAISE)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "llmrouter:{limits}:", timeout_s: float = 0.25
    ) -> RedisLimitStore:
        client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, prefix=prefix)

    async def reserve(
        self, reservation_id: str, checks: Sequence[Check], now: float, expires_at: float
    ) -> ReserveOutcome:
        keys = [self._zset, self._record_prefix + reservation_id]
        args: list[str | int] = [_ms(now), _ms(expires_at), self._record_prefix, reservation_id]
        for c in checks:
            keys.append(self._prefix + "c:" + c.counter)
            args += [c.field, c.oldest_bucket, c.limit, c.ask, _ms(c.expire_at)]
        try:
            out = await self._batcher.call(self._reserve_sha, keys, args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}") from exc
        admitted, denied, *currents = (int(v) for v in out)
        return ReserveOutcome(bool(admitted), denied, tuple(currents))

    async def settle(self, reservation_id: str, settlements: Sequence[Settlement], now: float) -> bool:
        keys = [self._zset, self._record_prefix + reservation_id]
        args: list[str | int] = [reservation_id]
        for s in settlements:
            keys.append(self._prefix + "c:" + s.counter)
            args += [s.field, -s.reserved, s.actual, _ms(s.expire_at)]
        try:
            live = await self._batcher.call(self._settle_sha, keys, args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}") from exc
        return int(live) == 1

    async def read(self, counter: str, oldest_bucket: int, now: float) -> tuple[int, int]:
        try:
            fields = await self._redis.hgetall(self._prefix + "c:" + counter)
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}") from exc
        used = reserved = 0
        for name, value in fields.items():
            field = name.decode() if isinstance(name, bytes) else str(name)
            if field == "r":
                reserved = int(value)
            elif oldest_bucket < 0 or int(field[1:]) >= oldest_bucket:
                used += int(value)
        return used, reserved

    async def raise_used(self, counter: str, floor: int, expire_at: float, now: float) -> int:
        keys = [self._prefix + "c:" + counter]
        try:
            added = await self._batcher.call(self._raise_sha, keys, [floor, _ms(expire_at)])
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}") from exc
        return int(added)

    async def close(self) -> None:
        await self._batcher.drain()
        await self._redis.aclose()
