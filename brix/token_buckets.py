"""Token-length buckets shared by the gateway's workload window, the GPU-mix optimizer and `brix profile`.

The gateway counts each finished request in the bucket `(bucket_of(prompt), bucket_of(completion))`,
the smallest power of two at or above each length (AIBrix's gateway uses log2 buckets too). A
profile's grid (`indexes` = [[output ticks], [input ticks]]) is mapped onto with `grid_index`: the
first tick at or above the length, the last tick for longer requests. Both round up, so a request
is counted where it costs at least as much as it does: the SLO holds, the price is a little high.
"""

from __future__ import annotations

from collections.abc import Sequence


def bucket_of(tokens: int) -> int:
    """The smallest power of two >= tokens (1 for 0 or 1)."""
    n = max(1, int(tokens))
    return 1 << (n - 1).bit_length()


def grid_index(tokens: int, ticks: Sequence[int]) -> int:
    """Index of the first tick >= tokens; the last index when tokens is above every tick."""
    for i, tick in enumerate(ticks):
        if tokens <= tick:
            return i
    return len(ticks) - 1


def parse_ticks(text: str, where: str) -> list[int]:
    """`128,512,2048` -> [128, 512, 2048]; ValueError says what is wrong with `where` (a flag name)."""
    try:
        ticks = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"{where} {text!r}: expected comma-separated token counts, e.g. 128,512,2048") from None
    if not ticks or any(t < 1 for t in ticks) or ticks != sorted(set(ticks)):
        raise ValueError(f"{where} {text!r}: token counts must be >= 1 and strictly increasing")
    return ticks
