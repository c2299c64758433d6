"""Rendezvous (highest-random-weight) hashing: which server owns a block (pure).

Every (server, key) pair gets a pseudo-random weight; a key lives on the server with the highest
weight. A server that leaves moves only its own keys (each to its next-highest server); a server
that joins takes about 1/N of the keys, each from whichever server held it, and nothing else moves.
With tens of servers the O(N) scan per key costs less than a ring's bookkeeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

_MASK = (1 << 64) - 1


def server_seed(server: str) -> int:
    return int.from_bytes(hashlib.blake2b(server.encode(), digest_size=8).digest(), "little")


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit mix."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def owner(key: int, seeds: Sequence[tuple[int, str]]) -> str | None:
    """The server with the highest weight for `key`; `seeds` = [(server_seed(s), s), ...]."""
    best, best_w = None, -1
    for seed, server in seeds:
        w = _mix(seed ^ key)
        if w > best_w:
            best, best_w = server, w
    return best


def group_by_owner(keys: Iterable[int], seeds: Sequence[tuple[int, str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k in keys:
        s = owner(k, seeds)
        if s is not None:
            out.setdefault(s, []).append(k)
    return out
