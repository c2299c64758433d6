"""Byte-bounded block stores with S3-FIFO or LRU eviction: pure data structures, no I/O, no clock.

Both hold `key -> (value, checksum)` and count `len(value)` bytes against `capacity`; a put that
would go over evicts first, and a value larger than the whole capacity is refused, so
`used_bytes <= capacity` holds after every call.

S3-FIFO (Yang et al., SOSP '23): new keys enter a small FIFO (10 % of the bytes by default);
a key read at least once while there is promoted to the main FIFO when it reaches the head,
one never read leaves and is remembered in the ghost FIFO (keys and sizes only, bounded by the
main FIFO's bytes); a put of a ghost key goes straight to main. A main-FIFO head that was read
is reinserted with its frequency lowered by one (frequency caps at 3). One-time blocks of a
scan therefore pass through the small FIFO without displacing the hot set, which LRU lets them
flush. LRU is the usual recency list, for comparison.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

Entry = tuple[bytes, int]  # value, crc32 of value
MAX_FREQ = 3


class BlockStore(Protocol):
    capacity: int
    used_bytes: int
    evictions: int

    def get(self, key: Hashable) -> Entry | None: ...
    def put(self, key: Hashable, value: bytes, crc: int) -> bool: ...
    def delete(self, key: Hashable) -> bool: ...
    def __contains__(self, key: object) -> bool: ...
    def __len__(self) -> int: ...


class LRUStore:
    """Least-recently-used eviction over bytes."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0 bytes, got {capacity}")
        self.capacity = capacity
        self.used_bytes = 0
        self.evictions = 0
        self._data: OrderedDict[Hashable, Entry] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable) -> Entry | None:
        entry = self._data.get(key)
        if entry is not None:
            self._data.move_to_end(key)
        return entry

    def put(self, key: Hashable, value: bytes, crc: int) -> bool:
        size = len(value)
        if size > self.capacity:
            return False
        old = self._data.pop(key, None)
        if old is not None:
            self.used_bytes -= len(old[0])
        data = self._data
        while self.used_bytes + size > self.capacity:
            _, (victim, _) = data.popitem(last=False)
            self.used_bytes -= len(victim)
            self.evictions += 1
        data[key] = (value, crc)
        self.used_bytes += size
        return True

    def delete(self, key: Hashable) -> bool:
        old = self._data.pop(key, None)
        if old is None:
            return False
        self.used_bytes -= len(old[0])
        return True


class S3FIFOStore:
    """S3-FIFO over bytes: small FIFO, main FIFO, ghost FIFO of keys."""

    def __init__(self, capacity: int, small_ratio: float = 0.1) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0 bytes, got {capacity}")
        if not 0 < small_ratio < 1:
            raise ValueError(f"small_ratio must be within (0, 1), got {small_ratio}")
        self.capacity = capacity
        self.small_capacity = max(1, int(capacity * small_ratio))
        self.main_capacity = capacity - self.small_capacity
        self.used_bytes = 0
        self.small_bytes = 0
        self.evictions = 0
        self.promotions = 0
        self._values: dict[Hashable, Entry] = {}
        self._freq: dict[Hashable, int] = {}
        self._small: OrderedDict[Hashable, None] = OrderedDict()
        self._main: OrderedDict[Hashable, None] = OrderedDict()
        self._ghost: OrderedDict[Hashable, int] = OrderedDict()  # key -> size
        self._ghost_bytes = 0

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable) -> Entry | None:
        entry = self._values.get(key)
        if entry is not None:
            f = self._freq[key]
            if f < MAX_FREQ:
                self._freq[key] = f + 1
        return entry

    def put(self, key: Hashable, value: bytes, crc: int) -> bool:
        size = len(value)
        if size > self.capacity:
            return False
        freq, to_main = 0, False
        if key in self._values:  # a replacement keeps its queue and frequency
            freq, to_main = self._freq[key], key in self._main
            self.delete(key)
        self._evict_until_fits(size)
        self._values[key] = (value, crc)
        self._freq[key] = freq
        self.used_bytes += size
        ghost_size = self._ghost.pop(key, None)
        if ghost_size is not None:
            self._ghost_bytes -= ghost_size
            to_main = True
        if to_main:
            self._main[key] = None
        else:
            self._small[key] = None
            self.small_bytes += size
        return True

    def delete(self, key: Hashable) -> bool:
        entry = self._values.pop(key, None)
        if entry is None:
            return False
        size = len(entry[0])
        self.used_bytes -= size
        del self._freq[key]
        if key in self._small:
            del self._small[key]
            self.small_bytes -= size
        else:
            del self._main[key]
        return True

    # --- eviction ------------------------------------------------------------------------
    def _evict_until_fits(self, incoming: int) -> None:
        while self.used_bytes + incoming > self.capacity:
            if self._small and (self.small_bytes >= self.small_capacity or not self._main):
                self._evict_small()
            else:
                self._evict_main()

    def _evict_small(self) -> None:
        key, _ = self._small.popitem(last=False)
        size = len(self._values[key][0])
        self.small_bytes -= size
        if self._freq[key] >= 1:  # read while in the small FIFO: it is not a one-time block
            self._freq[key] = 0
            self._main[key] = None
            self.promotions += 1
            return
        self._drop(key, size)
        self._ghost[key] = size
        self._ghost_bytes += size
        while self._ghost_bytes > self.main_capacity:
            _, gsize = self._ghost.popitem(last=False)
            self._ghost_bytes -= gsize

    def _evict_main(self) -> None:
        main = self._main
        freq = self._freq
        while True:  # terminates: every pass lowers a frequency or drops a key
            key, _ = main.popitem(last=False)
            f = freq[key]
            if f > 0:
                freq[key] = f - 1
                main[key] = None
                continue
            self._drop(key, len(self._values[key][0]))
            return

    def _drop(self, key: Hashable, size: int) -> None:
        del self._values[key]
        del self._freq[key]
        self.used_bytes -= size
        self.evictions += 1


def make_store(policy: str, capacity: int, small_ratio: float = 0.1) -> BlockStore:
    if policy == "s3fifo":
        return S3FIFOStore(capacity, small_ratio)
    if policy == "lru":
        return LRUStore(capacity)
    raise ValueError(f"unknown eviction policy {policy!r}; use s3fifo or lru")
