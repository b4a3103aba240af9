"""Limit counters in Redis, shared by every router replica: at most one round trip in flight.

Every operation is one function of one Lua script, so the check-and-reserve across every level is
atomic: two replicas can never both take the last dollar. The operations asked while no call is
out (one loop turn's), or while one is (under load, many turns'), go out as ONE script call
(redis_batch.py), run in the order they were asked; settles linger a moment to ride along with
the next reserve. Same semantics as `MemoryLimitStore` (store.py).

Layout, under `prefix` (default "llmrouter:{limits}:": the hash tag puts every key in one slot):
- `c:<counter>`: a hash, `r` = reserved, `u` = used (rolling counters: `u<bucket>` per bucket);
  it expires one window after its own (PEXPIREAT, refreshed on every write).
- `r:<reservation id>`: a hash, counter key -> amount held.
- `reservations`: a sorted set of reservation ids by expiry (ms). Every reserve first gives back
  up to SWEEP_MAX expired reservations: those of a router that died come back after the TTL.

The script is declared with the one key `reservations` and builds the others from its prefix,
which Redis Cluster does not allow in general; with the hash tag every key is in one slot, so it
works there too.

Needs Redis 7.0 or later (PEXPIRETIME). Amounts travel as decimal strings and are compared as Lua
numbers (doubles): exact up to 2^53, i.e. a budget of up to ~9 million USD in nano-USD per window.
The config refuses larger ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router_service.limits.model import Check, Settlement
from router_service.limits.redis_batch import OpBatcher
from router_service.limits.store import ReserveOutcome, StoreUnavailableError
from router_service.redis_client import redis_from_url

SWEEP_MAX = 64  # expired reservations given back per reserve (the rest on the next ones)
_RECORD_GRACE_MS = 60_000  # a reservation record outlives its expiry a little, for the sweep

# KEYS[1]: the reservations zset. ARGV[1]: counter key prefix, ARGV[2]: record key prefix, then one
# JSON operation each (amounts as decimal strings: Lua prints numbers over 1e14 in exponent form,
# which HINCRBY refuses; times in ms as numbers):
#   ["r", now, expires_at, id, [[counter, field, oldest bucket (-1: one field), limit (-1: never
#        refuse), ask, counter expire_at (0: never)], ...]]  -> [admitted, denied index, currents...]
#   ["s", id, [[counter, field, -reserved, actual, counter expire_at], ...]]  -> 1 live, 0 late
#   ["x", counter, floor, expire_at, field]  -> what was added (field := max(field, floor); the
#        field is "u", or a rolling bucket "u<n>")
# Answers: one JSON array, an entry per operation; {"error": "..."} for one that failed.
_SCRIPT = """
local zset = KEYS[1]
local counters = ARGV[1]
local records = ARGV[2]

local function extend(key, at)
  -- PEXPIREAT only ever later: a late settle carries an older expiry than a rolling counter's.
  local t = redis.call('PEXPIRETIME', key)
  if t < at then
    redis.call('PEXPIREAT', key, at)
  end
end

local function sweep(now)
  local dead = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, SWEEP_MAX)
  for _, id in ipairs(dead) do
    local record = records .. id
    local held = redis.call('HGETALL', record)
    for j = 1, #held, 2 do
      if held[j + 1] ~= '0' and redis.call('EXISTS', held[j]) == 1 then
        redis.call('HINCRBY', held[j], 'r', '-' .. held[j + 1])
      end
    end
    redis.call('DEL', record)
    redis.call('ZREM', zset, id)
  end
end

local function current_of(key, oldest)
  if oldest < 0 then
    local got = redis.call('HMGET', key, 'r', 'u')
    return tonumber(got[1] or '0') + tonumber(got[2] or '0')
  end
  local current = 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    local f = all[j]
    if f ~= 'r' and tonumber(string.sub(f, 2)) < oldest then
      redis.call('HDEL', key, f)
    else
      current = current + tonumber(all[j + 1])
    end
  end
  return current
end

local function reserve(op)
  sweep(op[2])
  local checks = op[5]
  local out = {'1', '-1'}
  for i, c in ipairs(checks) do
    local current = current_of(counters .. c[1], c[3])
    out[i + 2] = string.format('%d', current)
    local limit = tonumber(c[4])
    local ask = tonumber(c[5])
    if limit >= 0 and ask > 0 and current + ask > limit then
      out[1] = '0'
      out[2] = tostring(i - 1)
      return '[' .. table.concat(out, ',') .. ']'
    end
  end
  local record = records .. op[4]
  local held = {}
  for i, c in ipairs(checks) do
    local key = counters .. c[1]
    redis.call('HINCRBY', key, 'r', c[5])
    held[2 * i - 1] = key
    held[2 * i] = c[5]
    if c[6] > 0 then
      extend(key, c[6])
    end
  end
  -- One HSET of every counter's hold: each redis.call costs about a microsecond of Redis's own.
  if #held > 0 then
    redis.call('HSET', record, unpack(held))
  end
  redis.call('PEXPIREAT', record, op[3] + RECORD_GRACE_MS)
  redis.call('ZADD', zset, op[3], op[4])
  return '[' .. table.concat(out, ',') .. ']'
end

local function settle(op)
  local live = redis.call('ZREM', zset, op[2])
  redis.call('DEL', records .. op[2])
  for _, s in ipairs(op[3]) do
    local key = counters .. s[1]
    if live == 1 and s[3] ~= '0' and redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'r', s[3])
    end
    if s[4] ~= '0' then
      redis.call('HINCRBY', key, s[2], s[4])
      if s[5] > 0 then
        extend(key, s[5])
      end
    end
  end
  return tostring(live)
end

local function raise_used(op)
  local key = counters .. op[2]
  local field = op[5] or 'u'
  local used = tonumber(redis.call('HGET', key, field) or '0')
  local floor = tonumber(op[3])
  if used >= floor then return '0' end
  redis.call('HSET', key, field, op[3])
  local t = redis.call('PEXPIRETIME', key)
  if op[4] > 0 and (t < 0 or t < op[4]) then redis.call('PEXPIREAT', key, op[4]) end
  return string.format('%d', floor - used)
end

local run = {r = reserve, s = settle, x = raise_used}
local answers = {}
for i = 3, #ARGV do
  local ok, answer = pcall(function()
    local op = cjson.decode(ARGV[i])
    return run[op[1]](op)
  end)
  if not ok then
    local message = type(answer) == 'table' and answer.err or tostring(answer)
    answer = cjson.encode({error = message})
  end
  answers[#answers + 1] = answer
end
return '[' .. table.concat(answers, ',') .. ']'
""".replace("SWEEP_MAX", str(SWEEP_MAX)).replace("RECORD_GRACE_MS", str(_RECORD_GRACE_MS))


def _ms(t: float) -> int:
    return int(t * 1000)


# One encoder for every operation: json.dumps with any argument builds a new JSONEncoder per call,
# a third of the encoding's cost on this path (two operations a request). The operations are
# plain lists (no cycles to check for).
_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class RedisLimitStore:
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "llmrouter:{limits}:",
        settle_linger_s: float = 0.002,
        max_pending_settles: int = 10_000,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        keys, args = [f"{prefix}reservations"], [f"{prefix}c:", f"{prefix}r:"]
        self._batcher = OpBatcher(
            client, _SCRIPT, keys, args, linger_s=settle_linger_s, max_pending=max_pending_settles
        )

    @property
    def prefix(self) -> str:
        return self._prefix

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "llmrouter:{limits}:", timeout_s: float = 0.25
    ) -> RedisLimitStore:
        return cls(redis_from_url(url, timeout_s=timeout_s), prefix=prefix)

    async def reserve(
        self, reservation_id: str, checks: Sequence[Check], now: float, expires_at: float
    ) -> ReserveOutcome:
        rows = [
            [c.counter, c.field, c.oldest_bucket, str(c.limit), str(c.ask), _ms(c.expire_at)] for c in checks
        ]
        op = _dumps(["r", _ms(now), _ms(expires_at), reservation_id, rows])
        admitted, denied, *currents = await self._batcher.call(op)
        return ReserveOutcome(bool(admitted), denied, tuple(currents))

    async def settle(self, reservation_id: str, settlements: Sequence[Settlement], now: float) -> bool:
        rows = [[s.counter, s.field, str(-s.reserved), str(s.actual), _ms(s.expire_at)] for s in settlements]
        live = await self._batcher.call(_dumps(["s", reservation_id, rows]), urgent=False)
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

    async def read_buckets(self, counter: str, now: float) -> dict[int, int]:
        try:
            fields = await self._redis.hgetall(self._prefix + "c:" + counter)
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"limits store: {type(exc).__name__}: {exc}") from exc
        names = (
            (name.decode() if isinstance(name, bytes) else str(name), value) for name, value in fields.items()
        )
        return {int(name[1:]): int(value) for name, value in names if name[1:].isdigit()}

    async def raise_used(
        self, counter: str, floor: int, expire_at: float, now: float, field: str = "u"
    ) -> int:
        added = await self._batcher.call(_dumps(["x", counter, str(floor), _ms(expire_at), field]))
        return int(added)

    async def close(self) -> None:
        await self._batcher.aclose()
        await self._redis.aclose()
