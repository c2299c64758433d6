"""Proxy overhead of `brix gateway`: req/s and added latency vs direct to the engines, vs
sglang-router (round_robin, cache_aware) and vllm-router, same engine_mock backends, same load.

    .venv/bin/python hack/bench/bench_gateway_overhead.py            # fast default (~2 min)
    .venv/bin/python hack/bench/bench_gateway_overhead.py --rounds 5 --duration 5 --concurrency 64 --rate 200

Moderate load: fixed-rate arrivals (--rate req/s); "added p50/p99" = the target's latency minus
direct's at that rate. Saturation: --concurrency closed-loop clients; req/s. Engines run with
--speed 1000 and max_tokens 1, so the engines cost little and the router's cost shows. Peers come
from a separate venv (--peers-venv); when one cannot run, its row says why and the rest still runs.
All processes share this machine's cores (the load generator too): compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway_lib import (  # noqa: E402
    PeerUnavailable,
    closed_loop,
    open_loop,
    process_group,
    start_brix,
    start_engines,
    start_sglang,
    start_vllm_router,
    table,
    wait_serving,
)

MODEL = "bench-llm"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=int, default=2, help="engine_mock replicas behind every router")
    ap.add_argument("--duration", type=float, default=2.5, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds over all targets (each target started afresh per round); medians are reported, "
                         "so slow drifts of a shared machine hit every target alike")
    ap.add_argument("--rate", type=float, default=100.0, help="moderate load: requests per second (open loop)")
    ap.add_argument("--concurrency", type=int, default=32, help="saturation: closed-loop clients")
    ap.add_argument("--stream", action="store_true", help="stream the responses (SSE) instead of one JSON body")
    ap.add_argument("--peers-venv", default="/tmp/peers-venv", help="venv holding sglang-router and vllm-router")
    ap.add_argument("--only", default="", help="comma list of targets to run (default: all)")
    args = ap.parse_args()

    body = json.dumps({"model": MODEL, "prompt": "The quick brown fox jumps over the lazy dog. " * 4,
                       "max_tokens": 1, "stream": args.stream}).encode()
    venv = Path(args.peers_venv)
    rows = []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    print(f"engines={args.engines} rate={args.rate}/s concurrency={args.concurrency} duration={args.duration}s "
          f"stream={args.stream} cpus={os.cpu_count()} logs={log_dir}")
    with process_group(log_dir) as ps:
        engines = start_engines(ps, args.engines, "--speed", "1000", model=MODEL)
        targets = [
            ("direct", lambda: engines, None),
            ("brix least-request (asyncio loop)", lambda: [start_brix(ps, engines, event_loop="asyncio")], "brix"),
            ("brix least-request", lambda: [start_brix(ps, engines)], "brix"),
            ("brix least-request (aiohttp client)",
             lambda: [start_brix(ps, engines, "--upstream-client", "aiohttp")], "brix"),
            ("brix prefix-cache-aware", lambda: [start_brix(ps, engines, "--config", _cfg(log_dir))], "brix"),
            ("sglang-router round_robin", lambda: [start_sglang(ps, venv, engines, "round_robin")], "peer"),
            ("sglang-router cache_aware", lambda: [start_sglang(ps, venv, engines, "cache_aware")], "peer"),
            ("vllm-router round_robin", lambda: [start_vllm_router(ps, venv, engines, "round_robin",
                                                                   "--max-concurrent-requests", "4096")], "peer"),
            ("vllm-router cache_aware", lambda: [start_vllm_router(ps, venv, engines, "cache_aware",
                                                                   "--max-concurrent-requests", "4096")], "peer"),
        ]
        only = {t.strip() for t in args.only.split(",") if t.strip()}
        results: dict[str, list[dict[str, float]]] = {}
        notes: dict[str, str] = {}
        for rnd in range(args.rounds):
            for name, make, _kind in targets:
                if (only and name not in only and name != "direct") or name in notes:
                    continue
                before = list(ps.started)
                try:
                    bases = make()
                    for b in bases:
                        wait_serving(b, MODEL)
                except PeerUnavailable as exc:
                    notes[name] = f"NOT RUN: {exc}"
                    print(f"{name}: NOT RUN: {exc}", flush=True)
                    continue
                urls = [b + "/v1/completions" for b in bases]
                asyncio.run(closed_loop(urls, body, 8, 1.0))                    # warm-up
                moderate = asyncio.run(open_loop(urls, body, args.rate, args.duration))
                sat = asyncio.run(closed_loop(urls, body, args.concurrency, args.duration))
                results.setdefault(name, []).append({"p50": moderate.p(0.5), "p99": moderate.p(0.99),
                                                     "errors": moderate.errors + sat.errors, "rps": sat.rps})
                print(f"round {rnd + 1} {name}: moderate p50 {moderate.p(0.5) * 1000:.2f} ms "
                      f"p99 {moderate.p(0.99) * 1000:.2f} ms; saturation {sat.rps:.0f} req/s", flush=True)
                for p in [p for p in ps.started if p not in before]:
                    ps.stop(p)
        for name, _make, _kind in targets:
            if name in notes:
                rows.append({"target": name, "note": notes[name]})
            elif name in results:
                rs = results[name]
                rows.append({"target": name, **{k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "rps")},
                             "errors": sum(r["errors"] for r in rs)})
    direct = next(r for r in rows if r["target"] == "direct")
    sg_rps = {r["target"]: r["rps"] for r in rows if r["target"].startswith(("sglang", "vllm")) and "rps" in r}
    best_peer = max(sg_rps.values()) if sg_rps else None
    for r in rows:
        if "p50" in r:
            r["added_p50"] = r["p50"] - direct["p50"]
            r["added_p99"] = r["p99"] - direct["p99"]
            r["vs_direct"] = r["rps"] / direct["rps"]
            r["vs_best_peer"] = r["rps"] / best_peer if best_peer else None
            r["vs_sglang_rr"] = r["rps"] / sg_rps["sglang-router round_robin"] if "sglang-router round_robin" in sg_rps else None
    ms = lambda v: f"{v * 1000:.2f}"  # noqa: E731
    print()
    print(table(rows, [("target", "target", str), ("p50", "p50 ms", ms), ("p99", "p99 ms", ms),
                       ("added_p50", "added p50 ms", ms), ("added_p99", "added p99 ms", ms),
                       ("rps", "req/s (sat)", lambda v: f"{v:.0f}"), ("vs_direct", "x direct", lambda v: f"{v:.2f}"),
                       ("vs_sglang_rr", "x sglang rr", lambda v: f"{v:.2f}"),
                       ("vs_best_peer", "x best Rust router", lambda v: f"{v:.2f}"),
                       ("errors", "errors", str), ("note", "note", str)]))
    return 0


def _cfg(log_dir: Path) -> str:
    path = log_dir / "prefix.yaml"
    path.write_text("default_strategy: prefix-cache-aware\n")
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
