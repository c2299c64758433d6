"""Sliding-window limits, in memory and in a real redis-server, behave the same."""

from __future__ import annotations

import pytest

from gateway.ratelimit import MemoryStore, RedisStore


async def _window_behaviour(store) -> None:  # type: ignore[no-untyped-def]
    t0 = 1_000_000.0
    for i in range(3):
        assert (await store.hit("rpm:a", 3, 60.0, 1, "take", t0 + i)).allowed
    refused = await store.hit("rpm:a", 3, 60.0, 1, "take", t0 + 10)
    assert not refused.allowed
    assert 49 <= refused.retry_after_s <= 51           # the first request leaves the window at t0+60
    # another key is independent
    assert (await store.hit("rpm:b", 3, 60.0, 1, "take", t0 + 10)).allowed
    # sliding: at t0+60.5 the first request has left, the other two have not
    assert (await store.hit("rpm:a", 3, 60.0, 1, "take", t0 + 60.5)).allowed
    assert not (await store.hit("rpm:a", 3, 60.0, 1, "take", t0 + 60.7)).allowed
    # tokens: add usage, peek refuses once the window holds >= limit
    await store.hit("tpm:a", 100, 60.0, 60, "add", t0)
    assert (await store.hit("tpm:a", 100, 60.0, 0, "peek", t0 + 1)).allowed
    await store.hit("tpm:a", 100, 60.0, 50, "add", t0 + 2)
    peek = await store.hit("tpm:a", 100, 60.0, 0, "peek", t0 + 3)
    assert not peek.allowed and peek.total == 110


async def test_memory_sliding_window():
    await _window_behaviour(MemoryStore())


async def test_redis_sliding_window(redis_url):
    store = RedisStore(redis_url)
    try:
        await store.ping()
        await _window_behaviour(store)
    finally:
        await store.close()


async def test_no_burst_across_a_fixed_window_edge():
    store = MemoryStore()
    t0 = 1_000_000.0 - 0.5          # just before a minute boundary
    allowed = sum([(await store.hit("k", 10, 60.0, 1, "take", t0)).allowed for _ in range(10)])
    allowed += sum([(await store.hit("k", 10, 60.0, 1, "take", t0 + 1.0)).allowed for _ in range(10)])
    assert allowed == 10            # a fixed window would have let 20 through


@pytest.mark.parametrize("rps", [5])
async def test_per_second_window(rps):
    store = MemoryStore()
    t = 500.0
    results = [(await store.hit("rps:m", rps, 1.0, 1, "take", t + i * 0.01)).allowed for i in range(8)]
    assert results.count(True) == rps
    assert (await store.hit("rps:m", rps, 1.0, 1, "take", t + 1.2)).allowed
