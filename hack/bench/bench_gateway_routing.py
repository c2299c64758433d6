"""Routing quality: replay the Mooncake trace (time-scaled) against 8 engine_mock replicas with
small KV caches, once per routing strategy (fresh engines each time), and compare mean / P99
TTFT, throughput and the engines' prefix-cache hit rate; sglang-router cache_aware (and
round_robin) in the same run when it can be started from --peers-venv.

    .venv/bin/python hack/bench/bench_gateway_routing.py                   # fast default (~2.5 min)
    .venv/bin/python hack/bench/bench_gateway_routing.py --start 2800 --count 600 --peer-round-robin   # README figures
    .venv/bin/python hack/bench/bench_gateway_routing.py --start 0 --count 3993 --time-scale 0.1   # full trace

Prompts: block h of a row is TOKENS_PER_BLOCK tokens of text that is a deterministic function of
h (each word is exactly one brix.tokenizer token), so equal hash ids give equal prefixes; rows are
cut to --max-blocks blocks and outputs to --max-output tokens. Requests are streamed
/v1/completions; TTFT is measured by the client at the first SSE chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway_lib import (  # noqa: E402
    PeerUnavailable,
    pct,
    process_group,
    start_brix,
    start_engines,
    start_sglang,
    table,
    wait_serving,
)

MODEL = "bench-llm"
TRACE = Path(__file__).resolve().parents[3] / "shared" / "data" / "traces" / "mooncake_synthetic.jsonl"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def block_text(h: int, tokens: int) -> str:
    digest = hashlib.blake2b(str(h).encode(), digest_size=64).digest() * (tokens // 16 + 1)
    words = []
    for i in range(tokens):
        a, b = digest[2 * i], digest[2 * i + 1]
        words.append(" " + _ALPHABET[a % 26] + _ALPHABET[b % 26] + _ALPHABET[(a // 26) % 26] + _ALPHABET[(b // 26) % 26])
    return "".join(words)


def load_trace(path: Path, start: int, count: int, tokens_per_block: int, max_blocks: int, max_output: int,
               time_scale: float) -> list[tuple[float, str, int]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = rows[start:start + count]
    if not rows:
        raise SystemExit(f"no rows in {path} from {start} (count {count})")
    t0 = rows[0]["timestamp"]
    out = []
    for r in rows:
        blocks = r["hash_ids"][:max_blocks]
        prompt = "".join(block_text(h, tokens_per_block) for h in blocks)
        out.append(((r["timestamp"] - t0) / 1000.0 * time_scale, prompt, max(1, min(r["output_length"], max_output))))
    return out


def engine_prefix_counters(engines: list[str]) -> tuple[float, float]:
    hits = queries = 0.0
    for e in engines:
        with urllib.request.urlopen(e + "/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("vllm:prefix_cache_hits_total"):
                    hits += float(line.rsplit(" ", 1)[1])
                elif line.startswith("vllm:prefix_cache_queries_total"):
                    queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


async def replay(url: str, trace: list[tuple[float, str, int]], headers: dict[str, str]) -> dict[str, float]:
    ttfts: list[float] = []
    e2es: list[float] = []
    tokens = 0
    errors = 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as s:
        async def one(at: float, prompt: str, max_tokens: int) -> None:
            nonlocal tokens, errors
            delay = at - (time.perf_counter() - t_start)
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                    "ignore_eos": True}
            t0 = time.perf_counter()
            first = None
            try:
                async with s.post(url + "/v1/completions", json=body, headers=headers) as resp:
                    if resp.status != 200:
                        errors += 1
                        await resp.read()
                        return
                    async for chunk in resp.content.iter_any():
                        if first is None and b'"text"' in chunk:
                            first = time.perf_counter() - t0
                ttfts.append(first if first is not None else time.perf_counter() - t0)
                e2es.append(time.perf_counter() - t0)
                tokens += max_tokens
            except aiohttp.ClientError:
                errors += 1
        t_start = time.perf_counter()
        await asyncio.gather(*(one(at, p, m) for at, p, m in trace))
        makespan = time.perf_counter() - t_start
    return {"ttft_mean": statistics.fmean(ttfts) if ttfts else float("nan"), "ttft_p99": pct(ttfts, 0.99),
            "ttft_p50": pct(ttfts, 0.5), "e2e_mean": statistics.fmean(e2es) if e2es else float("nan"),
            "rps": len(e2es) / makespan, "tok_s": tokens / makespan, "errors": errors, "done": len(e2es)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=str(TRACE), help="Mooncake-format JSONL trace")
    ap.add_argument("--start", type=int, default=3000, help="first row (later rows reuse more prefixes)")
    ap.add_argument("--count", type=int, default=250, help="rows to replay")
    ap.add_argument("--time-scale", type=float, default=0.25, help="multiply trace times by this (0.25 = 4x faster)")
    ap.add_argument("--tokens-per-block", type=int, default=64, help="tokens per trace hash block (Mooncake: 512)")
    ap.add_argument("--max-blocks", type=int, default=48, help="cut prompts to this many blocks")
    ap.add_argument("--max-output", type=int, default=16, help="cap output tokens")
    ap.add_argument("--engines", type=int, default=8, help="engine_mock replicas")
    ap.add_argument("--kv-blocks", type=int, default=1024, help="KV blocks per engine (16 tokens each): small on purpose")
    ap.add_argument("--gpu-type", default="A10", help="engine_mock GPU profile (slower GPU = prefill matters more)")
    ap.add_argument("--strategies", default="random,least-request,prefix-cache-aware,prefix-cache-aware:3,least-request:2",
                    help="Brix strategies to run; a spec with ':' weights stays one entry when separated by ';'")
    ap.add_argument("--config", default="", help="gateway --config YAML (named plugins usable in --strategies)")
    ap.add_argument("--peers-venv", default="/tmp/peers-venv", help="venv with sglang-router")
    ap.add_argument("--no-peers", action="store_true", help="skip sglang-router")
    ap.add_argument("--peer-round-robin", action="store_true", help="also run sglang-router round_robin")
    args = ap.parse_args()

    trace_path = Path(args.trace)
    if not trace_path.exists():
        print(f"trace {trace_path} not found (../shared/data must sit beside the checkout)")
        return 1
    trace = load_trace(trace_path, args.start, args.count, args.tokens_per_block, args.max_blocks, args.max_output,
                       args.time_scale)
    specs = _split_specs(args.strategies)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-gw-routing-"))
    print(f"rows {args.start}..{args.start + len(trace) - 1} over {trace[-1][0]:.0f}s, {args.engines} engines x "
          f"{args.kv_blocks} KV blocks, {args.gpu_type}, cpus={os.cpu_count()}, "
          f"logs={log_dir}", flush=True)
    targets: list[tuple[str, str]] = [(f"brix {s}", s) for s in specs]
    if not args.no_peers:
        targets.append(("sglang-router cache_aware", "sglang:cache_aware"))
        if args.peer_round_robin:
            targets.append(("sglang-router round_robin", "sglang:round_robin"))
    rows = []
    engine_args = ("--kv-blocks", str(args.kv_blocks), "--gpu-type", args.gpu_type, "--max-model-len", "32768",
                   "--max-loras", "0")
    for name, spec in targets:
        with process_group(log_dir / name.replace(" ", "_").replace(":", "_").replace(",", "_")) as ps:
            engines = start_engines(ps, args.engines, *engine_args, model=MODEL)
            try:
                if spec.startswith("sglang:"):
                    url = start_sglang(ps, Path(args.peers_venv), engines, spec.split(":", 1)[1])
                    headers: dict[str, str] = {}
                else:
                    url = start_brix(ps, engines, *(("--config", args.config) if args.config else ()))
                    headers = {"routing-strategy": spec}
                wait_serving(url, MODEL)
            except PeerUnavailable as exc:
                rows.append({"target": name, "note": f"NOT RUN: {exc}"})
                print(f"{name}: NOT RUN: {exc}", flush=True)
                continue
            h0, q0 = engine_prefix_counters(engines)
            res = asyncio.run(replay(url, trace, headers))
            h1, q1 = engine_prefix_counters(engines)
            res["hit"] = (h1 - h0) / (q1 - q0) if q1 > q0 else float("nan")
            rows.append({"target": name, **res})
            print(f"{name}: TTFT mean {res['ttft_mean'] * 1000:.0f} ms p99 {res['ttft_p99'] * 1000:.0f} ms, "
                  f"{res['rps']:.2f} req/s, prefix hit {res['hit']:.1%}, errors {res['errors']}", flush=True)
    by = {r["target"]: r for r in rows if "ttft_mean" in r}
    sg, rnd = by.get("sglang-router cache_aware"), by.get("brix random")
    for r in rows:
        if "ttft_mean" in r:
            r["vs_sg_mean"] = r["ttft_mean"] / sg["ttft_mean"] if sg else None
            r["vs_random_p99"] = r["ttft_p99"] / rnd["ttft_p99"] if rnd else None
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    print()
    print(table(rows, [("target", "target", str), ("ttft_mean", "TTFT mean ms", ms), ("ttft_p50", "p50 ms", ms),
                       ("ttft_p99", "TTFT p99 ms", ms), ("e2e_mean", "e2e mean ms", ms),
                       ("rps", "req/s", lambda v: f"{v:.2f}"), ("tok_s", "out tok/s", lambda v: f"{v:.0f}"),
                       ("hit", "prefix hit", lambda v: f"{v:.1%}"),
                       ("vs_sg_mean", "mean / sglang cache_aware", lambda v: f"{v:.2f}"),
                       ("vs_random_p99", "p99 / random", lambda v: f"{v:.2f}"),
                       ("errors", "errors", str), ("note", "note", str)]))
    return 0


def _split_specs(text: str) -> list[str]:
    """Strategies are comma-separated, but a weighted spec contains commas too: `a:3,b:2` is kept
    whole when every part has a weight; plain names split."""
    out: list[str] = []
    for part in text.split(";") if ";" in text else _smart_split(text):
        if part.strip():
            out.append(part.strip())
    return out


def _smart_split(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    out: list[str] = []
    i = 0
    while i < len(parts):
        if ":" in parts[i]:
            group = [parts[i]]
            while i + 1 < len(parts) and ":" in parts[i + 1]:
                i += 1
                group.append(parts[i])
            out.append(",".join(group))
        else:
            out.append(parts[i])
        i += 1
    return out


if __name__ == "__main__":
    sys.exit(main())
