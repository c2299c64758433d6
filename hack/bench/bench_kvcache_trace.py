"""The KV cache pool on the Mooncake trace: 4 engine-mocks behind the Brix gateway with least-request
routing (so a replica rarely sees its own earlier prefixes), once with engine-local prefix caches
only and once with `--kv-pool` to one `brix kvcache serve`; fresh processes for each. Throughput
(completed requests / makespan, output tokens / s) and mean / P99 TTFT measured by the client at
the first SSE chunk, the engines' prefix hit rate and the prompt tokens that came from the pool.

    .venv/bin/python hack/bench/bench_kvcache_trace.py                 # fast default (~1.5 min)

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE), help="Mooncake-format JSONL trace")
    ap.add_argument("--start", type=int, default=3000, help="first row")
    ap.add_argument("--count", type=int, default=250, help="rows to replay")
    ap.add_argument("--time-scale", type=float, default=0.25, help="multiply trace times by this (0.25 = 4x faster)")
    ap.add_argument("--tokens-per-block", type=int, default=64, help="tokens per trace hash block (Mooncake: 512)")
    ap.add_argument("--max-blocks", type=int, default=48, help="cut prompts to this many blocks")
    ap.add_argument("--max-output", type=int, default=16, help="cap output tokens")
    ap.add_argument("--engines", type=int, default=4, help="engine_mock replicas")
    ap.add_argument("--kv-blocks", type=int, default=1024, help="KV blocks per engine (16 tokens each)")
    ap.add_argument("--gpu-type", default="A10", help="engine_mock GPU profile")
    ap.add_argument("--bandwidth", type=float, default=12.5, help="--kv-pool-bandwidth of the engines, GB/s")
    ap.add_argument("--pool-capacity", default="2GiB", help="--capacity of the pool server")
    ap.add_argument("--strategy", default="least-request", help="gateway routing strategy")
    args = ap.parse_args()

    path = Path(args.trace)
    if not path.exists():
        print(f"trace {path} not found (../shared/data must sit beside the checkout)")
        return 1
    trace = load_trace(path, args.start, args.count, args.tokens_per_block, args.max_blocks, args.max_output,
                       args.time_scale)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-kvcache-trace-"))
    print(f"rows {args.start}..{args.start + len(trace) - 1} over {trace[-1][0]:.0f} s, {args.engines} engines x "
          f"{args.kv_blocks} KV blocks, {args.gpu_type}, routing {args.strategy}, pool bandwidth {args.bandwidth} GB/s, "
          f"cpus={os.cpu_count()}, logs={log_dir}", flush=True)
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
            engines = start_engines(ps, args.engines, *extra, model=MODEL)
            url = start_brix(ps, engines)
            wait_serving(url, MODEL)
            h0, q0 = engine_prefix_counters(engines)
            p0 = pool_tokens(engines) if name.startswith("with") else 0.0
            res = asyncio.run(replay(url, trace, {"routing-strategy": args.strategy}))
            h1, q1 = engine_prefix_counters(engines)
            res["hit"] = (h1 - h0) / (q1 - q0) if q1 > q0 else float("nan")
            res["pool_share"] = ((pool_tokens(engines) - p0) / (q1 - q0)) if name.startswith("with") else 0.0
            rows.append({"target": name, **res})
            print(f"{name}: TTFT mean {res['ttft_mean'] * 1000:.0f} ms p99 {res['ttft_p99'] * 1000:.0f} ms, "
                  f"{res['rps']:.2f} req/s, prefix hit {res['hit']:.1%} (from the pool {res['pool_share']:.1%}), "
                  f"errors {res['errors']}", flush=True)
    base, pool = rows
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    print()
    print(table(rows, [("target", "engines", str), ("ttft_mean", "TTFT mean ms", ms), ("ttft_p50", "p50 ms", ms),
                       ("ttft_p99", "TTFT p99 ms", ms), ("rps", "req/s", lambda v: f"{v:.2f}"),
                       ("tok_s", "out tok/s", lambda v: f"{v:.0f}"), ("hit", "prompt tokens cached", lambda v: f"{v:.1%}"),
                       ("pool_share", "of which from the pool", lambda v: f"{v:.1%}"), ("errors", "errors", str)]))
    print(f"\nwith the pool / without: throughput {pool['rps'] / base['rps']:.2f}x, "
          f"mean TTFT {pool['ttft_mean'] / base['ttft_mean']:.2f}x ({pool['ttft_mean'] / base['ttft_mean'] - 1:+.0%}), "
          f"P99 TTFT {pool['ttft_p99'] / base['ttft_p99']:.2f}x ({pool['ttft_p99'] / base['ttft_p99'] - 1:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
