"""Chained prefix block hashes, shared by engine_mock's KV cache and the gateway's prefix index.

Block i's hash covers every token of blocks 0..i (it chains the previous block's hash), so two
prompts share block i's hash exactly when they share their first (i+1)*block_size tokens —
the same rule vLLM's automatic prefix caching uses. Only full blocks are hashed.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Sequence

# token ids as 4-byte little-endian unsigned integers, packed in one C call
_U32 = next(code for code in ("I", "L") if array(code).itemsize == 4)


def _u32le(ids: Sequence[int]) -> bytes:
    packed = array(_U32, ids)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def block_hashes(token_ids: Sequence[int], block_size: int) -> list[int]:
    """Block i's hash: blake2b-64 of (block i-1's digest + block i's token ids as u32 LE)."""
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    hashes: list[int] = []
    parent = b"\x00" * 8
    full = len(token_ids) - len(token_ids) % block_size
    data = _u32le(token_ids[:full])
    step = block_size * 4
    blake2b = hashlib.blake2b
    for start in range(0, full * 4, step):
        digest = blake2b(parent + data[start:start + step], digest_size=8).digest()
        hashes.append(int.from_bytes(digest, "little"))
        parent = digest
    return hashes
