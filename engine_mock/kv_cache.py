"""The simulated paged KV cache: a fixed pool of blocks with an automatic prefix cache.

Blocks held by running sequences are either *private* (not yet full, or a duplicate of a block
another sequence computed first) or *hashed*: a full prompt block identified by its chained
hash (brix.prefix.block_hashes), shared by every sequence whose prompt starts the same way.
A hashed block whose last user finished stays resident as *evictable*; evictable blocks are
reused on a prefix hit and evicted least-recently-freed first when fresh blocks are needed —
vLLM's automatic prefix caching. Usage, like vLLM's, counts only blocks held by sequences.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class KVCache:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(f"num_blocks and block_size must be positive, got {num_blocks} and {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._ref: dict[int, int] = {}  # resident hashed block -> number of sequences holding it
        self._evictable: OrderedDict[int, None] = OrderedDict()  # ref == 0, oldest first
        self._private = 0

    @property
    def used_blocks(self) -> int:
        return len(self._ref) - len(self._evictable) + self._private

    @property
    def available_blocks(self) -> int:
        """Blocks a new allocation may take: never used plus evictable cached blocks."""
        return self.num_blocks - self.used_blocks

    @property
    def cached_blocks(self) -> int:
        return len(self._ref)

    def usage(self) -> float:
        return self.used_blocks / self.num_blocks

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of `hashes` are resident (a prefix hit)."""
        ref = self._ref
        hit = 0
        for h in hashes:
            if h not in ref:
                break
            hit += 1
        return hit

    def acquire_prefix(self, hashes: Sequence[int], extra_blocks: int) -> bool:
        """Take the resident blocks `hashes` plus `extra_blocks` fresh private ones, or nothing.

        Fails (returns False, changes nothing) when the pool cannot supply the fresh blocks.
        """
        reviving = sum(1 for h in hashes if self._ref[h] == 0)
        if self.available_blocks - reviving < extra_blocks:
            return False
        for h in hashes:
            if self._ref[h] == 0:
                del self._evictable[h]
            self._ref[h] += 1
        self._take_fresh(extra_blocks)
        return True

    def allocate(self, blocks: int) -> bool:
        """Take `blocks` fresh private blocks, evicting cached ones if needed; False if full."""
        if self.available_blocks < blocks:
            return False
        self._take_fresh(blocks)
        return True

    def _take_fresh(self, blocks: int) -> None:
        free_uncached = self.num_blocks - len(self._ref) - self._private
        while free_uncached < blocks:
            victim, _ = self._evictable.popitem(last=False)
            del self._ref[victim]
            free_uncached += 1
        self._private += blocks

    def commit(self, block_hash: int) -> bool:
        """A private block was filled with the prompt block `block_hash`: make it shareable.

        Returns False (the block stays private) when another sequence already cached it.
        """
        if block_hash in self._ref:
            return False
        self._ref[block_hash] = 1
        self._private -= 1
        return True

    def load(self, hashes: Sequence[int], pin: bool = False) -> int:
        """Blocks fetched from outside (a KV pool) become cached blocks, in order.

        Takes free blocks first, then evicts older cached ones (never one loaded in this call);
        stops when neither is left. Returns how many leading blocks of `hashes` are now resident.
        With `pin`, each of those blocks gets one reference (not evictable) until the caller
        releases it with `release(hashes[:n], 0)`: a queued request keeps what it loaded.
        """
        n = 0
        mine: set[int] = set()
        for h in hashes:
            if h in self._ref:
                if self._ref[h] == 0:  # keep it from being evicted by the loads behind it
                    self._evictable.move_to_end(h)
                    mine.add(h)
                n += 1
                continue
            if self.num_blocks - len(self._ref) - self._private <= 0:
                if not self._evictable or next(iter(self._evictable)) in mine:
                    break
                victim, _ = self._evictable.popitem(last=False)
                del self._ref[victim]
            self._ref[h] = 0
            self._evictable[h] = None
            mine.add(h)
            n += 1
        if pin:
            for h in hashes[:n]:
                if self._ref[h] == 0:
                    del self._evictable[h]
                self._ref[h] += 1
        return n

    def release(self, hashes: Sequence[int], private_blocks: int) -> None:
        """A sequence finished or was preempted: drop its references.

        Tail blocks are freed first so that they are evicted before the shared head of the prompt.
        """
        for h in reversed(hashes):
            n = self._ref[h] - 1
            self._ref[h] = n
            if n == 0:
                self._evictable[h] = None
        self._private -= private_blocks
