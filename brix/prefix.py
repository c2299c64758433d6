"""Chained prefix block hashes, shared by engine_mock's KV cache and the gateway's prefix index.

Block i's hash covers every token of blocks 0..i (it chains the previous block's hash), so two
prompts share block i's hash exactly when they share their first (i+1)*block_size tokens —
the same rule vLLM's automatic prefix caching uses. Only full blocks are hashed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def block_hashes(token_ids: Sequence[int], block_size: int) -> list[int]:
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    hashes: list[int] = []
    parent = b"\x00" * 8
    full = len(token_ids) - len(token_ids) % block_size
    for start in range(0, full, block_size):
        block = token_ids[start:start + block_size]
        digest = hashlib.blake2b(parent + b"".join(t.to_bytes(4, "little") for t in block), digest_size=8).digest()
        hashes.append(int.from_bytes(digest, "little"))
        parent = digest
    return hashes
