"""Sliding-window rate limits: per API key RPM and TPM, per model RPS.

A window of `window_s` is kept as 60 buckets (1 s buckets for a minute, ~17 ms for a second);
the count is the sum of the buckets younger than the window, so a burst at the end of one
minute and the start of the next cannot pass twice the limit (a fixed window's flaw).
Two stores share the algorithm: Redis (a Lua script per call, so several gateway replicas share
the counts; the caller's clock is used) and memory (one process; used with a warning when no
--redis is given). Callers pass `now` (wall seconds).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)

BUCKETS = 60
Mode = Literal["take", "peek", "add"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    total: float            # count in the window after this call
    retry_after_s: float    # when not allowed: seconds until the oldest bucket leaves the window


def _retry_after(oldest_bucket: int, bucket_s: float, now: float) -> float:
    return max(0.001, (oldest_bucket + BUCKETS) * bucket_s - now)


class Store(Protocol):
    async def hit(self, key: str, limit: float, window_s: float, amount: float, mode: Mode,
                  now: float) -> Decision: ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process sliding windows (one gateway replica only)."""

    def __init__(self) -> None:
        self._windows: dict[str, dict[int, float]] = {}

    async def hit(self, key: str, limit: float, window_s: float, amount: float, mode: Mode,
                  now: float) -> Decision:
        return self.hit_sync(key, limit, window_s, amount, mode, now)

    def hit_sync(self, key: str, limit: float, window_s: float, amount: float, mode: Mode,
                 now: float) -> Decision:
        bucket_s = window_s / BUCKETS
        current = math.floor(now / bucket_s)
        buckets = self._windows.setdefault(key, {})
        for b in [b for b in buckets if b <= current - BUCKETS]:
            del buckets[b]
        total = sum(buckets.values())
        oldest = min(buckets, default=current)
        if mode == "peek":
            return Decision(total < limit, total, _retry_after(oldest, bucket_s, now) if total >= limit else 0.0)
        if mode == "take" and total + amount > limit:
            return Decision(False, total, _retry_after(oldest, bucket_s, now))
        buckets[current] = buckets.get(current, 0.0) + amount
        return Decision(True, total + amount, 0.0)

    async def close(self) -> None:
        return None


_LUA = """
local key = KEYS[1]
local current = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local mode = ARGV[5]
local ttl_ms = tonumber(ARGV[6])
local vals = redis.call('HGETALL', key)
local total = 0
local oldest = current
for i = 1, #vals, 2 do
  local b = tonumber(vals[i])
  if b <= current - nb then
    redis.call('HDEL', key, vals[i])
  else
    total = total + tonumber(vals[i + 1])
    if b < oldest then oldest = b end
  end
end
if mode == 'peek' then
  if total >= limit then return {0, tostring(total), oldest} end
  return {1, tostring(total), oldest}
end
if mode == 'take' and total + amount > limit then
  return {0, tostring(total), oldest}
end
redis.call('HINCRBYFLOAT', key, tostring(current), amount)
redis.call('PEXPIRE', key, ttl_ms)
return {1, tostring(total + amount), oldest}
"""


class RedisStore:
    """Sliding windows in Redis hashes `brix:rl:<key>` (field = bucket number)."""

    def __init__(self, url: str, prefix: str = "brix:rl:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._script = self._redis.register_script(_LUA)
        self._prefix = prefix

    async def ping(self) -> None:
        await self._redis.ping()

    async def hit(self, key: str, limit: float, window_s: float, amount: float, mode: Mode,
                  now: float) -> Decision:
        bucket_s = window_s / BUCKETS
        current = math.floor(now / bucket_s)
        allowed, total, oldest = await self._script(
            keys=[self._prefix + key],
            args=[current, BUCKETS, limit, amount, mode, int(window_s * 1000) + 1000])
        retry = _retry_after(int(oldest), bucket_s, now) if not int(allowed) else 0.0
        return Decision(bool(int(allowed)), float(total), retry)

    async def close(self) -> None:
        await self._redis.aclose()
