"""S3-FIFO against LRU: block hit ratio on the Mooncake trace, capacity 10 % of its unique blocks.

Each request reads its blocks (hash_ids) in order from the pool's store (kvcache.eviction, the
code the server runs), and writes back the ones it missed, as engines do with `--kv-pool`.
Also at 5 % and 20 % for context. Pure computation: no servers, seconds to run.

    .venv/bin/python hack/bench/bench_kvcache_eviction.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from kvcache.eviction import make_store  # noqa: E402

TRACE = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces" / "mooncake_synthetic.jsonl"
BLOCK = b"\0" * 64  # every block the same size: capacity counts blocks


def hit_ratio(requests: list[list[int]], policy: str, capacity_blocks: int) -> float:
    store = make_store(policy, capacity_blocks * len(BLOCK))
    hits = reads = 0
    for blocks in requests:
        for h in blocks:
            reads += 1
            if store.get(h) is not None:
                hits += 1
            else:
                store.put(h, BLOCK, 0)
    return hits / reads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE))
    ap.add_argument("--fractions", default="0.05,0.1,0.2", help="capacities as fractions of the unique blocks")
    args = ap.parse_args()
    path = Path(args.trace)
    if not path.exists():
        print(f"trace {path} not found (../shared/data must sit beside the checkout)")
        return 1
    requests = [json.loads(line)["hash_ids"] for line in path.read_text().splitlines() if line.strip()]
    unique = len({h for r in requests for h in r})
    reads = sum(len(r) for r in requests)
    print(f"{len(requests)} requests, {reads} block reads, {unique} unique blocks "
          f"(best possible hit ratio {1 - unique / reads:.3f})")
    print(f"{'capacity':>22}  {'S3-FIFO':>8}  {'LRU':>8}  {'S3-FIFO / LRU':>13}")
    for frac in (float(f) for f in args.fractions.split(",")):
        cap = max(1, int(unique * frac))
        s3, lru = hit_ratio(requests, "s3fifo", cap), hit_ratio(requests, "lru", cap)
        print(f"{frac:>6.0%} ({cap:>6} blocks)     {s3:>8.3f}  {lru:>8.3f}  {s3 / lru if lru else float('inf'):>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
