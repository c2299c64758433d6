"""Pool get / put throughput (GB/s, ops/s) for 64 KiB and 2 MiB values, against a plain in-process
memory copy and against Redis GET / SET of the same values, all in one run.

Both stores run as their own process on loopback (`brix kvcache serve`, `redis-server` with no
persistence); both clients run in this process on the same event loop (uvloop when available),
so the same Python-side costs are paid by both. Fairness, the same for both sides:
- one key per request: `--concurrency` requests in flight, each on its own connection
  (PoolClient(connections=C), redis-py's pool of C connections), one request in flight per
  connection: no pipelining on either side;
- batched: `--batch` keys per request, `--concurrency` in flight: one PoolClient batched frame
  against one Redis MGET / MSET (Redis's own batching), again one connection per request;
- the same values (random bytes, a distinct key per op), the same `run_ops` loop, and for each
  cell `--rounds` rounds that alternate pool and Redis (which goes first alternates too), each
  side's ops/s the median of its rounds, so that load from other processes on the machine hits
  both alike; every round's ratio is printed;
- `--warmup` unmeasured rounds per side first: a store's first writes fault in fresh pages
  (the pool's heap, Redis's jemalloc arenas), which a running cache has long done.
redis-py runs without hiredis (its pure-Python parser), as installed here. The pool checks a
crc32 on every value end to end (client computes on put, server verifies on put, client verifies
on get); Redis checks nothing. The machine (2 cores) is shared by client and servers, as in
production the engine and the pool would not be.

    .venv/bin/python hack/bench/bench_kvcache_throughput.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brix import procs  # noqa: E402
from kvcache.client import PoolClient  # noqa: E402
from kvcache.protocol import CRC32_IMPL, Namespace  # noqa: E402

NS = Namespace("bench", 16)


def memcpy_rate(value: bytes, seconds: float = 0.5) -> tuple[float, float]:
    """(GB/s, copies/s) of bytearray(value): one in-process copy of the same value."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            bytearray(value)
        n += 50
    dt = time.perf_counter() - t0
    return n * len(value) / dt / 1e9, n / dt


async def run_ops(op, total: int, concurrency: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds to run op(i) for i in range(total) with `concurrency` in flight."""
    it = iter(range(total))

    async def worker() -> None:
        for i in it:
            await op(i)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0


async def bench_pool(url: str, values: list[bytes], concurrency: int, batch: int,
                     connections: int = 0) -> dict[str, float]:
    n = len(values)
    async with PoolClient(url, connections=connections or concurrency, timeout_s=30) as client:
        if batch == 1:
            put_s = await run_ops(lambda i: client.put(NS, [(i, values[i])]), n, concurrency)
            get_s = await run_ops(lambda i: client.get(NS, [i]), n, concurrency)
        else:
            groups = n // batch
            put_s = await run_ops(lambda g: client.put(NS, [(i, values[i]) for i in range(g * batch, (g + 1) * batch)]),
                                  groups, concurrency)
            get_s = await run_ops(lambda g: client.get(NS, list(range(g * batch, (g + 1) * batch))), groups, concurrency)
        assert client.stats.failures == 0 and client.stats.hits == n, client.stats
    return {"put_s": put_s, "get_s": get_s}


async def bench_redis(url: str, values: list[bytes], concurrency: int, batch: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    n = len(values)
    r = aioredis.from_url(url, max_connections=concurrency)
    try:
        await r.flushdb()
        key = lambda i: f"bench:{i}"  # noqa: E731
        if batch == 1:
            put_s = await run_ops(lambda i: r.set(key(i), values[i]), n, concurrency)
            got = 0

            async def get(i: int) -> None:
                nonlocal got
                value = await r.get(key(i))  # read before `got`, or concurrent updates are lost
                got += value is not None
            get_s = await run_ops(get, n, concurrency)
        else:
            groups = n // batch
            put_s = await run_ops(lambda g: r.mset({key(i): values[i] for i in range(g * batch, (g + 1) * batch)}),
                                  groups, concurrency)
            got = 0

            async def mget(g: int) -> None:
                nonlocal got
                found = await r.mget([key(i) for i in range(g * batch, (g + 1) * batch)])
                got += sum(v is not None for v in found)
            get_s = await run_ops(mget, groups, concurrency)
        assert got == n, got
    finally:
        await r.aclose()
    return {"put_s": put_s, "get_s": get_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (connections) for both")
    ap.add_argument("--batch", type=int, default=16, help="keys per request in the batched rows")
    ap.add_argument("--bytes-64k", type=int, default=256 << 20, help="bytes moved per 64 KiB round (each way)")
    ap.add_argument("--bytes-2m", type=int, default=512 << 20, help="bytes moved per 2 MiB round (each way)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds per cell, alternating pool and Redis")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured rounds per side before a cell's rounds")
    ap.add_argument("--pool-connections", type=int, default=0,
                    help="the pool client's connections (default: --concurrency, one request in flight on each, "
                         "as redis-py; fewer pipeline several requests per connection)")
    args = ap.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server not found: install it (make redis / apt-get install redis-server)")
        return 1
    try:
        import uvloop
        loop_name = "uvloop"
        runner = uvloop.run
    except ImportError:
        loop_name, runner = "asyncio", asyncio.run
    logs = Path(tempfile.mkdtemp(prefix="bench-kvcache-"))
    port, http, rport = procs.free_port(), procs.free_port(), procs.free_port()
    started = []
    try:
        started.append(procs.start("kvcache", procs.brix_argv("kvcache", "serve", "--port", str(port), "--http-port",
                                                              str(http), "--capacity", "3GiB", "--log-level", "warning"),
                                   logs / "kvcache.log", ready_url=f"http://127.0.0.1:{http}/readyz"))
        started.append(procs.start("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                             "--appendonly", "no", "--maxmemory", "3gb"], logs / "redis.log",
                                   ready_port=rport))
        for p in started:
            p.wait_ready(30)
        time.sleep(0.3)
        print(f"cpus={os.cpu_count()} loop={loop_name} crc32={CRC32_IMPL} concurrency={args.concurrency} "
              f"batch={args.batch} pool_connections={args.pool_connections or args.concurrency} rounds={args.rounds} "
              f"warmup={args.warmup} load={os.getloadavg()[0]:.1f} "
              f"(client and both servers share the machine; logs {logs})")
        rows = []
        ratios: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for size, moved in ((64 << 10, args.bytes_64k), (2 << 20, args.bytes_2m)):
            n = max(args.batch * args.concurrency, moved // size)
            n -= n % args.batch
            values = [os.urandom(size) for _ in range(min(n, 64))]
            values = [values[i % len(values)] for i in range(n)]
            gbs, cps = memcpy_rate(values[0])
            rows.append((size, "memcpy (in-process)", 1, cps, gbs, cps, gbs))
            for batch in (1, args.batch):
                runs: dict[str, list[dict[str, float]]] = {"pool": [], "redis": []}
                for r in range(-args.warmup, args.rounds):
                    order = ("pool", "redis") if r % 2 == 0 else ("redis", "pool")
                    for side in order:
                        if side == "pool":
                            runs[side].append(runner(bench_pool(f"kvcache://127.0.0.1:{port}", values,
                                                                args.concurrency, batch, args.pool_connections)))
                            runner(_drop_all(f"kvcache://127.0.0.1:{port}", n))  # make room for the next round
                        else:
                            runs[side].append(runner(bench_redis(f"redis://127.0.0.1:{rport}/0", values,
                                                                 args.concurrency, batch)))
                    if r < 0:  # a warm-up round
                        runs["pool"].pop()
                        runs["redis"].pop()
                        continue
                    pool, red = runs["pool"][-1], runs["redis"][-1]
                    ratios.setdefault((size, batch), []).append((red["put_s"] / pool["put_s"],
                                                                 red["get_s"] / pool["get_s"]))
                for name, rs in runs.items():
                    put_s = statistics.median(r["put_s"] for r in rs)
                    get_s = statistics.median(r["get_s"] for r in rs)
                    rows.append((size, name, batch, n / put_s, n * size / put_s / 1e9, n / get_s, n * size / get_s / 1e9))
        print(f"\n{'value':>7}  {'store':<20} {'keys/req':>8}  {'put ops/s':>10} {'put GB/s':>9}  {'get ops/s':>10} "
              f"{'get GB/s':>9}   (median of {args.rounds} rounds)")
        for size, name, batch, pops, pgb, gops, ggb in rows:
            print(f"{size >> 10:>5}Ki  {name:<20} {batch:>8}  {pops:>10,.0f} {pgb:>9.2f}  {gops:>10,.0f} {ggb:>9.2f}")
        print("\npool / redis ops/s (same value size, same keys per request): medians, then each round's ratio")
        for size in (64 << 10, 2 << 20):
            for batch in (1, args.batch):
                pool = next(r for r in rows if r[0] == size and r[1] == "pool" and r[2] == batch)
                red = next(r for r in rows if r[0] == size and r[1] == "redis" and r[2] == batch)
                each = ratios[(size, batch)]
                print(f"  {size >> 10:>5} KiB, {batch:>2} keys/request: put {pool[3] / red[3]:.2f}x "
                      f"({', '.join(f'{a:.2f}' for a, _ in each)}), get {pool[5] / red[5]:.2f}x "
                      f"({', '.join(f'{b:.2f}' for _, b in each)})")
    finally:
        for p in reversed(started):
            p.stop()
    return 0


async def _drop_all(url: str, n: int) -> None:
    async with PoolClient(url) as client:
        for i in range(0, n, 4096):
            await client.delete(NS, list(range(i, min(n, i + 4096))))


if __name__ == "__main__":
    sys.exit(main())
