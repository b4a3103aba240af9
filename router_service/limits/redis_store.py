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

Needs Redis 7.0 or later (PEXPIRETIME). Amounts are Lua numbers (doubles): exact up to 2^53,
i.e. a budget of up to ~9 million USD in nano-USD per window. The config refuses larger ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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


class RedisLimitStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "llmrouter:{limits}:") -> None:
        self._redis = client
        self._prefix = prefix
        self._zset = f"{prefix}reservations"
        self._record_prefix = f"{prefix}r:"
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

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
            out = await self._reserve(keys=keys, args=args)
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
            live = await self._settle(keys=keys, args=args)
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

    async def close(self) -> None:
        await self._redis.aclose()
