"""The simulated KV block pool and its prefix cache, without a server."""

from __future__ import annotations

import pytest

from engine_mock.kv_cache import KVCache


def test_prefix_blocks_are_shared_and_kept_after_release() -> None:
    kv = KVCache(10, 16)
    assert kv.allocate(3)
    assert kv.commit(101) and kv.commit(102)  # two full prompt blocks become shareable
    assert kv.used_blocks == 3 and kv.cached_blocks == 2
    assert kv.match([101, 102, 103]) == 2
    assert kv.match([999, 102]) == 0  # chained: a miss on block 0 is a miss on everything

    assert kv.acquire_prefix([101, 102], 1)  # a second sequence shares both blocks
    assert kv.used_blocks == 4
    kv.release([101, 102], 1)
    kv.release([101, 102], 1)
    assert kv.used_blocks == 0 and kv.usage() == 0
    assert kv.match([101, 102]) == 2  # still cached, evictable


def test_eviction_is_lru_and_tail_first() -> None:
    kv = KVCache(4, 16)
    kv.allocate(2)
    kv.commit(1), kv.commit(2)
    kv.release([1, 2], 0)  # tail block 2 freed first -> evicted first
    kv.allocate(2)
    kv.commit(3), kv.commit(4)
    kv.release([3, 4], 0)
    assert kv.cached_blocks == 4 and kv.available_blocks == 4
    assert kv.allocate(1)
    assert kv.match([1]) == 1 and kv.match([1, 2]) == 1  # 2 was the least recently freed
    assert kv.allocate(1)
    assert kv.match([1]) == 0


def test_full_pool_refuses_without_changing_anything() -> None:
    kv = KVCache(4, 16)
    assert kv.allocate(3)
    kv.commit(7)
    assert not kv.allocate(2)
    assert not kv.acquire_prefix([], 2)
    assert kv.used_blocks == 3
    kv.release([7], 2)
    # reviving an evictable block costs a block of availability
    assert kv.acquire_prefix([7], 3)
    assert kv.used_blocks == 4
    assert not kv.allocate(1)


def test_duplicate_commit_stays_private() -> None:
    kv = KVCache(4, 16)
    kv.allocate(2)
    assert kv.commit(5)
    assert not kv.commit(5)  # a second sequence computed the same block at the same time
    assert kv.used_blocks == 2 and kv.cached_blocks == 1


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError):
        KVCache(0, 16)
