"""Pool membership in Redis: servers announce themselves with heartbeats, clients read who is alive.

Each server keeps `brix:kvcache:<pool>:member:<host:port>` alive with `SET ... PX <ttl>` every
heartbeat and adds `host:port` to the set `brix:kvcache:<pool>:members`. A member is alive while
its key exists: Redis expires it `ttl` after the last heartbeat, so a server that dies leaves
the pool within `ttl` without any clock agreement between machines. Clients read the set and the
keys (SMEMBERS + MGET) every refresh and drop the set entries whose key has expired. A server
that stops cleanly deletes both at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from brix.logs import kv

log = logging.getLogger(__name__)
PREFIX = "brix:kvcache"


def members_key(pool: str) -> str:
    return f"{PREFIX}:{pool}:members"


def member_key(pool: str, addr: str) -> str:
    return f"{PREFIX}:{pool}:member:{addr}"


async def heartbeat(redis, pool: str, addr: str, ttl_s: float) -> None:  # type: ignore[no-untyped-def]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(member_key(pool, addr), str(time.time()), px=int(ttl_s * 1000))
        pipe.sadd(members_key(pool), addr)
        await pipe.execute()


async def leave(redis, pool: str, addr: str) -> None:  # type: ignore[no-untyped-def]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(member_key(pool, addr))
        pipe.srem(members_key(pool), addr)
        await pipe.execute()


async def alive(redis, pool: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Members whose heartbeat key has not expired (expired ones are removed from the set)."""
    names = sorted(m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(members_key(pool)))
    if not names:
        return []
    beats = await redis.mget([member_key(pool, n) for n in names])
    dead = [n for n, b in zip(names, beats, strict=True) if b is None]
    if dead:
        await redis.srem(members_key(pool), *dead)
    return [n for n, b in zip(names, beats, strict=True) if b is not None]


@dataclass
class Registrar:
    """A server's heartbeat loop; `registered` turns true after the first successful beat."""

    redis_url: str
    pool: str
    addr: str
    interval_s: float = 1.0
    ttl_s: float = 3.0
    registered: bool = False
    _redis: object = field(default=None, repr=False)

    async def run(self, stop: asyncio.Event) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.redis_url, socket_timeout=self.interval_s,
                                        socket_connect_timeout=self.interval_s)
        failing = False
        try:
            while not stop.is_set():
                try:
                    await heartbeat(self._redis, self.pool, self.addr, self.ttl_s)
                    if not self.registered or failing:
                        kv(log, "joined the pool", pool=self.pool, addr=self.addr, redis=_safe(self.redis_url))
                    self.registered, failing = True, False
                except Exception as exc:  # noqa: BLE001 - keep serving; retry next beat
                    if not failing:
                        kv(log, "heartbeat failed", logging.WARNING, pool=self.pool, error=f"{type(exc).__name__}: {exc}")
                    failing = True
                try:
                    await asyncio.wait_for(stop.wait(), self.interval_s)
                except TimeoutError:
                    pass
            try:
                await leave(self._redis, self.pool, self.addr)
                kv(log, "left the pool", pool=self.pool, addr=self.addr)
            except Exception as exc:  # noqa: BLE001 - the key expires by itself
                kv(log, "could not leave the pool cleanly", logging.WARNING, error=str(exc))
        finally:
            await self._redis.aclose()  # type: ignore[attr-defined]


def _safe(url: str) -> str:
    """A Redis URL without its password, for logs."""
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
