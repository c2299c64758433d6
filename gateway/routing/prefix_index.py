"""An approximate index of which prefix blocks each endpoint holds, learnt from routing decisions.

Per (endpoint, model) an LRU of block hash -> last time it was routed there. A block counts as
held while it is younger than `ttl_s` and among the endpoint's `capacity` most recent blocks
(the engine's own KV cache evicts LRU, so a bounded LRU mirrors it). Pure: callers pass `now`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence


class PrefixIndex:
    def __init__(self, ttl_s: float, default_capacity: int) -> None:
        self.ttl_s = ttl_s
        self.default_capacity = default_capacity
        self._lru: dict[tuple[str, str], OrderedDict[int, float]] = {}

    def match(self, endpoint: str, model: str, hashes: Sequence[int], now: float) -> int:
        """How many leading blocks of `hashes` the endpoint holds (fresh entries only)."""
        lru = self._lru.get((endpoint, model))
        if not lru:
            return 0
        oldest = now - self.ttl_s
        n = 0
        for h in hashes:
            seen = lru.get(h)
            if seen is None or seen < oldest:
                break
            n += 1
        return n

    def insert(self, endpoint: str, model: str, hashes: Iterable[int], now: float, capacity: int = 0) -> None:
        key = (endpoint, model)
        lru = self._lru.get(key)
        if lru is None:
            lru = self._lru[key] = OrderedDict()
        for h in hashes:
            lru[h] = now
            lru.move_to_end(h)
        limit = capacity or self.default_capacity
        oldest = now - self.ttl_s
        while lru and (len(lru) > limit or next(iter(lru.values())) < oldest):
            lru.popitem(last=False)

    def forget_endpoints(self, keep: Iterable[str]) -> None:
        """Drop every endpoint not in `keep` (called when discovery removes endpoints)."""
        alive = set(keep)
        for key in [k for k in self._lru if k[0] not in alive]:
            del self._lru[key]

    def size(self, endpoint: str, model: str) -> int:
        return len(self._lru.get((endpoint, model), ()))
