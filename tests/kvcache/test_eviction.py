"""S3-FIFO and LRU block stores (pure): a scan of one-time blocks does not flush S3-FIFO's hot set
(it does flush LRU's), the capacity in bytes is never exceeded, and every value read back is the
value last written for its key."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvcache.eviction import LRUStore, S3FIFOStore, make_store

BLOCK = 1000


def hit_ratio_of_hot_set(policy: str, rounds: int = 40) -> float:
    """A hot set of 30 blocks read in turn, each read followed by 5 never-repeated scan blocks
    (what a long one-off prompt does to a prefix cache). Capacity: 100 blocks."""
    store = make_store(policy, 100 * BLOCK)
    hot = [f"hot{i}" for i in range(30)]
    scan = (f"scan{i}" for i in range(10**9))
    hits = reads = 0
    for _ in range(rounds):
        for key in hot:
            reads += 1
            if store.get(key) is not None:
                hits += 1
            else:
                store.put(key, b"h" * BLOCK, 0)
            for _ in range(5):  # 150 scan blocks per round: more than LRU can hold beside the hot set
                k = next(scan)
                if store.get(k) is None:
                    store.put(k, b"s" * BLOCK, 0)
    return hits / reads


def test_a_scan_does_not_flush_the_hot_set_under_s3fifo_but_does_under_lru() -> None:
    s3, lru = hit_ratio_of_hot_set("s3fifo"), hit_ratio_of_hot_set("lru")
    print(f"\nhot-set hit ratio with a scan: S3-FIFO {s3:.2f}, LRU {lru:.2f}")
    assert s3 > 0.9
    assert lru < 0.1


def test_one_time_blocks_pass_through_the_small_fifo_and_are_remembered_as_ghosts() -> None:
    store = S3FIFOStore(10 * BLOCK)  # small FIFO target: 1 block
    for key in "abcdefghij":
        store.put(key, key.encode() * BLOCK, 0)
    assert store.get("b") is not None
    store.put("k", b"k" * BLOCK, 0)  # full: a (never read) leaves the small FIFO for the ghost
    assert "a" not in store and store.evictions == 1
    store.put("l", b"l" * BLOCK, 0)  # b was read: promoted to main; c (never read) goes instead
    assert "b" in store and "c" not in store and store.promotions == 1
    store.put("a", b"A" * BLOCK, 7)  # a ghost key comes back straight into the main FIFO
    assert store.get("a") == (b"A" * BLOCK, 7)
    assert store.used_bytes == 10 * BLOCK


@pytest.mark.parametrize("policy", ["s3fifo", "lru"])
def test_a_value_larger_than_the_capacity_is_refused_and_changes_nothing(policy: str) -> None:
    store = make_store(policy, 10 * BLOCK)
    store.put("a", b"a" * BLOCK, 0)
    assert store.put("big", b"x" * (10 * BLOCK + 1), 0) is False
    assert "big" not in store and store.get("a") is not None and store.used_bytes == BLOCK


def test_an_unknown_policy_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="s3fifo or lru"):
        make_store("fifo", 100)


ops = st.lists(st.tuples(st.sampled_from(["get", "put", "delete"]), st.integers(0, 40), st.integers(0, 3000)),
               max_size=400)


@pytest.mark.parametrize("cls", [S3FIFOStore, LRUStore])
@settings(max_examples=150, deadline=None)
@given(ops=ops, capacity=st.integers(1, 20_000))
def test_capacity_is_never_exceeded_and_reads_return_the_last_write(cls, ops, capacity: int) -> None:  # type: ignore[no-untyped-def]
    store = cls(capacity)
    last: dict[int, bytes] = {}
    for op, key, size in ops:
        if op == "put":
            value = random.randbytes(size)
            if store.put(key, value, len(value)):
                last[key] = value
            else:
                assert size > capacity  # refused, and the old value (if any) stays
        elif op == "get":
            entry = store.get(key)
            if entry is not None:
                assert entry == (last[key], len(last[key]))
        else:
            store.delete(key)
            assert key not in store
        assert 0 <= store.used_bytes <= capacity
        assert store.used_bytes == sum(len(v) for k, v in last.items() if k in store)
