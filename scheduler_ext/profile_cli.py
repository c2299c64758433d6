"""`brix profile`: benchmark an engine over the optimizer's grid and write an AIBrix-format GPU profile
(flags only; the benchmark loads inside run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags

# AIBrix's sample profiles' grid: completion-token ticks / prompt-token ticks.
DEFAULT_BUCKETS = "4,8,16,32,64,128,256,512/128,256,512,1024,2048"
# $ per GPU-hour used when --cost is not given: Mélange's example prices (melange-release
# example.json: A10G $1.01/h, A100-80GB $3.67/h). Other types need --cost.
PRICE_PER_HOUR = {"A10": 1.01, "A10G": 1.01, "A100": 3.67}


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", required=True, metavar="URL",
                   help="base URL of the engine (vLLM or brix engine-mock): /v1/completions and /metrics")
    p.add_argument("--gpu-type", required=True, metavar="T",
                   help="GPU type the engine runs on; the profile's gpu (the extender matches nodes by it)")
    p.add_argument("--slo", required=True, metavar="SLO",
                   help="latency objectives a rate must meet, e.g. ttft_p99=1s,e2e_p99=30s (metrics ttft, tpot, "
                        "itl, e2e; percentiles p50 p90 p95 p99 mean)")
    p.add_argument("--buckets", default=DEFAULT_BUCKETS, metavar="OUT/IN",
                   help="completion-token ticks / prompt-token ticks of the grid (AIBrix's indexes order); "
                        f"default {DEFAULT_BUCKETS}")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the profile")
    p.add_argument("--cost", type=float, default=None,
                   help="price of one replica per hour in dollars (default for A10/A10G 1.01, A100 3.67: Mélange's "
                        "example prices; required for other types)")
    p.add_argument("--model", default=None, help="model to request (default: the first of the engine's /v1/models)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="engine seconds per wall second: engine-mock's --speed (1 for a real engine)")
    p.add_argument("--trial-seconds", type=float, default=30.0,
                   help="engine seconds of arrivals per trial, at least (see --settle)")
    p.add_argument("--settle", type=float, default=8.0,
                   help="a trial's arrivals span at least this many times a lone request's e2e latency, so that "
                        "a rate over capacity fills the KV cache and shows in the latencies (default 8)")
    p.add_argument("--min-requests", type=int, default=20, help="fewest requests in one trial")
    p.add_argument("--max-requests", type=int, default=5000,
                   help="most requests in one trial: a trial that needs more fails (default 5000)")
    p.add_argument("--precision", type=float, default=0.1,
                   help="stop a bucket's search when the lowest failing rate is within this fraction of the best")
    p.add_argument("--seed", type=int, default=0, help="seed of the arrival times and prompts")
    add_logging_flags(p)


def parse_buckets(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from brix.token_buckets import parse_ticks

    outputs, sep, inputs = text.partition("/")
    if not sep:
        raise UsageError(f"--buckets {text!r}: expected COMPLETION_TICKS/PROMPT_TICKS, e.g. 16,64,256/256,1024,4096")
    try:
        return tuple(parse_ticks(outputs, "--buckets completion ticks")), tuple(parse_ticks(inputs, "--buckets prompt ticks"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from brix import logs
    from scheduler_ext.model import parse_slo
    from scheduler_ext.profile_bench import ProfileError, ProfileSettings, run_profile

    if not args.engine.startswith(("http://", "https://")):
        raise UsageError(f"--engine {args.engine!r}: expected an http:// or https:// URL")
    try:
        slo = parse_slo(args.slo).targets
    except ValueError as exc:
        raise UsageError("--slo: " + str(exc).partition(": ")[2]) from None
    outputs, inputs = parse_buckets(args.buckets)
    cost = args.cost if args.cost is not None else PRICE_PER_HOUR.get(args.gpu_type.upper())
    if cost is None or cost < 0:
        raise UsageError(f"--cost: give the price per hour of one {args.gpu_type} replica (known defaults: "
                         f"{', '.join(f'{k} {v}' for k, v in PRICE_PER_HOUR.items())})")
    checks = [(args.time_scale > 0, "--time-scale must be > 0"), (args.trial_seconds > 0, "--trial-seconds must be > 0"),
              (args.settle >= 0, "--settle must be >= 0"),
              (1 <= args.min_requests <= args.max_requests, "need 1 <= --min-requests <= --max-requests"),
              (0 < args.precision < 1, "--precision must be within (0, 1)")]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: folder {out.parent} does not exist")
    logs.setup(args.log_level, args.log_format)
    settings = ProfileSettings(engine=args.engine.rstrip("/"), gpu_type=args.gpu_type, slo=slo, cost=cost,
                               inputs=inputs, outputs=outputs, out=out, model=args.model, time_scale=args.time_scale,
                               trial_seconds=args.trial_seconds, settle=args.settle, min_requests=args.min_requests,
                               max_requests=args.max_requests, precision=args.precision, seed=args.seed)
    try:
        doc = asyncio.run(run_profile(settings, lambda line: print(line, file=sys.stderr, flush=True)))
    except ProfileError as exc:
        print(f"brix profile: {exc}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(doc, indent=1) + "\n")
    bench = doc["benchmark"]
    print(f"wrote {out}: {len(outputs)}x{len(inputs)} buckets, {bench['trials']} trials, "  # type: ignore[index]  # the profile document's "benchmark" is a mapping
          f"{bench['seconds']} s")  # type: ignore[index]  # as above
    return 0


COMMANDS: list[Command] = [
    Command("profile", "benchmark an engine over the GPU-mix grid and write an AIBrix-format GPU profile", _args, _run,
            description="For each completion x prompt bucket, the highest request rate whose latencies (read from "
                        "the engine's vLLM histograms) meet --slo; writes {gpu, cost, tputs, indexes, slos} for "
                        "brix optimize, brix scheduler-ext --profiles and brix autoscale-sim --optimizer."),
]
