"""The KV cache pool on the Mooncake trace: 4 engine-mocks behind the Brix gateway with least-request
routing (so a replica rarely sees its own earlier prefixes), once with engine-local prefix caches
only and once with `--kv-pool` to one `brix kvcache serve`; fresh processes for each. Throughput
(completed requests / makespan, output tokens / s) and mean / P99 TTFT measured by the client at
the first SSE chunk, the engines' prefix hit rate and the prompt tokens that came from the pool.

    .venv/bin/python hack/bench/bench_kvcache_trace.py                 # 0.3, then 0.25 and 0.5 (~8 min)
    .venv/bin/python hack/bench/bench_kvcache_trace.py --also ''       # the goal load only (~2 min)
    .venv/bin/python hack/bench/bench_kvcache_trace.py --warmup 0      # from cold caches

Steady state, not a cold start: before the measured rows, the --warmup rows before them (250) are
replayed through the same processes at the same pace, unmeasured, and drained, in both
configurations. A pool exists to keep what the engines' GPU caches cannot, and later rows of the
trace reuse prefixes of much earlier ones: rows 3000..3249 could reuse 30 % of their prompt blocks
(as a leading prefix, an infinite cache) counting only each other, 53 % after the 250 rows before
them and 89 % after all 3000. From cold caches the measured window spends its first seconds
filling the pool, which a running service did long ago.

The goal is judged at one load, --time-scale 0.3 (about 14 req/s offered against about 9 req/s the
engines sustain without the pool, about 13 with it after the warm-up and 11 from cold): throughput
only grows where the engines without the pool cannot keep up, and TTFT only falls a lot where the
engines with it still can. Far above (0.125) both queue; far below (0.5) throughput is the offered
rate.

Prompts come from the trace rows as in bench_gateway_routing.py (block h of a row is
--tokens-per-block tokens of text that is a function of h). The pool's transfer cost is modelled by
engine-mock from the real KV size of a block (16 tokens x 512 KiB for Llama-2-7B fp16) and
--kv-pool-bandwidth (default 12.5 GB/s, a 100 Gb/s RDMA NIC); the bytes sent per block are a 4 KiB
stand-in. The paper's figure (AIBrix Table 1, on vLLM with its own prefix caching): about +50 %
throughput and -60 % / -70 % mean / P99 TTFT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway_lib import process_group, start_brix, start_engines, table, wait_serving  # noqa: E402
from bench_gateway_routing import MODEL, TRACE, engine_prefix_counters, load_trace, replay  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brix import procs  # noqa: E402


def pool_tokens(engines: list[str]) -> float:
    total = 0.0
    for e in engines:
        with urllib.request.urlopen(e + "/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("engine_mock_kv_pool_prefill_tokens_total{"):
                    total += float(line.rsplit(" ", 1)[1])
    return total


GOAL = (1.25, -0.30, -0.35)  # half the paper's: throughput, mean TTFT, P99 TTFT


def run_load(args: argparse.Namespace, path: Path, time_scale: float) -> dict[str, float]:
    """Both configurations at one load; prints their table and returns the ratios."""
    trace = load_trace(path, args.start, args.count, args.tokens_per_block, args.max_blocks, args.max_output,
                       time_scale)
    warm_start = max(0, args.start - args.warmup)
    warm = load_trace(path, warm_start, args.start - warm_start, args.tokens_per_block, args.max_blocks,
                      args.max_output, time_scale) if args.start > warm_start else []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-kvcache-trace-"))
    warmed = f"after rows {warm_start}..{args.start - 1} (unmeasured, drained)" if warm else "from cold caches"
    print(f"\n--time-scale {time_scale}: rows {args.start}..{args.start + len(trace) - 1} {warmed} over "
          f"{trace[-1][0]:.0f} s ({len(trace) / trace[-1][0]:.1f} req/s offered), "
          f"{args.engines} engines x {args.kv_blocks} KV blocks, "
          f"{args.gpu_type}, routing {args.strategy}, pool bandwidth {args.bandwidth} GB/s, cpus={os.cpu_count()}, "
          f"load={os.getloadavg()[0]:.1f}, logs={log_dir}", flush=True)
    engine_args = ["--kv-blocks", str(args.kv_blocks), "--gpu-type", args.gpu_type, "--max-model-len", "32768",
                   "--max-loras", "0"]
    rows = []
    for name in ("local prefix cache only", "with the KV pool"):
        with process_group(log_dir / name.replace(" ", "_")) as ps:
            extra = list(engine_args)
            if name.startswith("with"):
                port, http = procs.free_port(), procs.free_port()
                ps.start("kvcache", procs.brix_argv("kvcache", "serve", "--port", str(port), "--http-port", str(http),
                                                    "--capacity", args.pool_capacity, "--log-level", "warning"),
                         f"http://127.0.0.1:{http}/readyz")
                extra += ["--kv-pool", f"kvcache://127.0.0.1:{port}", "--kv-pool-bandwidth", str(args.bandwidth)]
                if args.lookahead is not None:
                    extra += ["--kv-pool-lookahead", str(args.lookahead)]
            engines = start_engines(ps, args.engines, *extra, model=MODEL)
            url = start_brix(ps, engines)
            wait_serving(url, MODEL)
            if warm:  # the same earlier rows through both, drained before the measured window starts
                asyncio.run(replay(url, warm, {"routing-strategy": args.strategy}))
            h0, q0 = engine_prefix_counters(engines)
            p0 = pool_tokens(engines) if name.startswith("with") else 0.0
            res = asyncio.run(replay(url, trace, {"routing-strategy": args.strategy}))
            h1, q1 = engine_prefix_counters(engines)
            res["hit"] = (h1 - h0) / (q1 - q0) if q1 > q0 else float("nan")
            res["pool_share"] = ((pool_tokens(engines) - p0) / (q1 - q0)) if name.startswith("with") else 0.0
            rows.append({"target": name, **res})
    base, pool = rows
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    print(table(rows, [("target", "engines", str), ("ttft_mean", "TTFT mean ms", ms), ("ttft_p50", "p50 ms", ms),
                       ("ttft_p99", "TTFT p99 ms", ms), ("rps", "req/s", lambda v: f"{v:.2f}"),
                       ("tok_s", "out tok/s", lambda v: f"{v:.0f}"), ("hit", "prompt tokens cached", lambda v: f"{v:.1%}"),
                       ("pool_share", "of which from the pool", lambda v: f"{v:.1%}"), ("errors", "errors", str)]))
    ratio = {"time_scale": time_scale, "rps": pool["rps"] / base["rps"],
             "mean": pool["ttft_mean"] / base["ttft_mean"] - 1, "p99": pool["ttft_p99"] / base["ttft_p99"] - 1}
    print(f"with the pool / without: throughput {ratio['rps']:.2f}x, mean TTFT {ratio['mean']:+.0%}, "
          f"P99 TTFT {ratio['p99']:+.0%}", flush=True)
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE), help="Mooncake-format JSONL trace")
    ap.add_argument("--start", type=int, default=3000, help="first row")
    ap.add_argument("--count", type=int, default=250, help="rows to replay")
    ap.add_argument("--warmup", type=int, default=250,
                    help="rows before --start replayed first, unmeasured, at the same pace and drained, through "
                         "both configurations (0: measure from cold caches)")
    ap.add_argument("--time-scale", type=float, default=0.3,
                    help="the load the goal is judged at: trace times x this (0.3 = 3.3x faster, ~14 req/s offered)")
    ap.add_argument("--also", default="0.25,0.5",
                    help="other time scales to run and print after it (comma-separated; '' for none)")
    ap.add_argument("--tokens-per-block", type=int, default=64, help="tokens per trace hash block (Mooncake: 512)")
    ap.add_argument("--max-blocks", type=int, default=48, help="cut prompts to this many blocks")
    ap.add_argument("--max-output", type=int, default=16, help="cap output tokens")
    ap.add_argument("--engines", type=int, default=4, help="engine_mock replicas")
    ap.add_argument("--kv-blocks", type=int, default=1024, help="KV blocks per engine (16 tokens each)")
    ap.add_argument("--gpu-type", default="A10", help="engine_mock GPU profile")
    ap.add_argument("--bandwidth", type=float, default=12.5, help="--kv-pool-bandwidth of the engines, GB/s")
    ap.add_argument("--lookahead", type=int, default=None, help="--kv-pool-lookahead of the engines (default theirs)")
    ap.add_argument("--pool-capacity", default="2GiB", help="--capacity of the pool server")
    ap.add_argument("--strategy", default="least-request", help="gateway routing strategy")
    args = ap.parse_args()

    path = Path(args.trace)
    if not path.exists():
        print(f"trace {path} not found (../shared/data must sit beside the checkout)")
        return 1
    loads = [args.time_scale] + [float(x) for x in args.also.split(",") if x.strip()]
    results = [run_load(args, path, ts) for ts in loads]
    print(f"\nsummary (goal, half the paper's: throughput >= {GOAL[0]:.2f}x, mean TTFT <= {GOAL[1]:+.0%}, "
          f"P99 TTFT <= {GOAL[2]:+.0%}; judged at --time-scale {args.time_scale}):")
    for r in results:
        met = r["rps"] >= GOAL[0] and r["mean"] <= GOAL[1] and r["p99"] <= GOAL[2]
        print(f"  --time-scale {r['time_scale']:<5} throughput {r['rps']:.2f}x, mean TTFT {r['mean']:+.0%}, "
              f"P99 TTFT {r['p99']:+.0%}: {'all three met' if met else 'not all met'}"
              f"{'  <- the goal load' if r is results[0] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
