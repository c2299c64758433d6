"""The GPU-mix loop's cost: an optimizer-driven mixed fleet against the cheapest single-type fleet,
both scaled by `brix autoscale-sim --optimizer` (the same loop: workload window -> Mélange +
hysteresis -> one KPA PodAutoscaler per GPU type with the optimizer as its source -> pods with a
start-up delay), on the Splitwise conversation and code traces mixed (../shared/data/traces).

1. AIBrix's A100 and A40 profiles (../shared/data/profiles): the A40 alone is the cheapest in
   every bucket, so the mix must come out at the A40 fleet's cost (ratio 1.00).
2. Profiles that `brix profile` makes, in this run, from engine-mock's A10 and A100 models
   (Mélange's example prices $1.01/h and $3.67/h) under TTFT p99 2.5 s and TPOT p99 100 ms (a
   TTFT-only SLO lets an engine slow its answers down without limit): the mix must cost no more
   than the A100 alone, and less where the types cross over. Also on each trace alone. The
   profiles print per bucket and the fractional bound: what the trace costs with each request
   served by its cheapest type per request, against the A100 alone.

Goal (issue 17): never more expensive than the cheapest single type; cheaper where types cross over.

    .venv/bin/python hack/bench/bench_gpu_mix.py [--speed-a10 10] [--speed-a100 5] [--workdir DIR] [--reuse-profiles]

Making the two profiles takes ~45 min on the 2-core development machine (both at once); with
--reuse-profiles the rest takes ~20 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from brix import procs  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CONV, CODE = DATA / "traces" / "splitwise_conv.csv", DATA / "traces" / "splitwise_code.csv"
AIBRIX = [DATA / "profiles" / "simulator-llama2-7b-a100.json", DATA / "profiles" / "simulator-llama2-7b-a40.json"]
BUCKETS = "16,64,256,1024/256,1024,4096,8192"
SLO = "ttft_p99=2.5s,tpot_p99=0.1s"


def sim(profiles: list[Path], traces: list[Path], extra: list[str]) -> dict[str, Any]:
    argv = procs.brix_argv("autoscale-sim", "--optimizer", "--profiles", *map(str, profiles),
                           "--trace", ",".join(map(str, traces)), *extra)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {"fleets": [r for r in rows if "fleet" in r], "comparison": rows[-1]["comparison"]}


def make_profiles(workdir: Path, speed: dict[str, float], reuse: bool) -> tuple[list[Path], dict[str, float]]:
    """engine-mock A10 and A100, both profiled at the same time (each with its own engine at its speed:
    the A100's fastest bucket is ~70 req/s, which the client could not send at 10x on a loaded 2-core box)."""
    paths = {gpu: workdir / f"engine-mock-{gpu.lower()}.json" for gpu in ("A10", "A100")}
    todo = [gpu for gpu, out in paths.items() if not (reuse and out.exists())]
    engines: list[procs.ManagedProcess] = []
    runs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for gpu in todo:
            port = procs.free_port()
            engine = procs.start(f"engine-mock-{gpu}", procs.brix_argv(
                "engine-mock", "--port", str(port), "--model", "llama2-7b", "--gpu-type", gpu, "--speed", str(speed[gpu]),
                "--max-model-len", "10240", "--log-level", "warning"), workdir / f"engine-{gpu}.log",
                ready_url=f"http://127.0.0.1:{port}/health")
            engines.append(engine)
            engine.wait_ready(30)
            runs[gpu] = subprocess.Popen(procs.brix_argv(
                "profile", "--engine", f"http://127.0.0.1:{port}", "--gpu-type", gpu, "--slo", SLO, "--buckets", BUCKETS,
                "--time-scale", str(speed[gpu]), "--out", str(paths[gpu]), "--log-level", "warning"), cwd=ROOT)
        for gpu, run in runs.items():
            if run.wait() != 0:
                raise SystemExit(f"brix profile of engine-mock {gpu} failed (exit {run.returncode})")
    finally:
        for engine in engines:
            engine.stop()
    seconds = {gpu: json.loads(out.read_text())["benchmark"]["seconds"] for gpu, out in paths.items()}
    return list(paths.values()), seconds


def fractional_bound(docs: list[dict[str, Any]], traces: list[Path]) -> float:
    """What the trace's requests cost served each by its cheapest type per request (fractional replicas),
    over the same on the last type alone (the A100): the most any mix can save, before whole replicas."""
    from controllers.autoscaler.mix_sim import load_requests, per_second_grid
    from scheduler_ext.gpu_mix import per_request_cost
    from scheduler_ext.solvers.melange import GpuProfile

    gpus = [GpuProfile(str(d["gpu"]), float(d["cost"]), d["tputs"]) for d in docs]
    seconds = per_second_grid(load_requests(traces), docs[0]["indexes"])
    total = [[sum(s[o][i] for s in seconds) for i in range(len(seconds[0][0]))] for o in range(len(seconds[0]))]
    return per_request_cost(gpus, total, {g.name for g in gpus}) / per_request_cost(gpus, total, {gpus[-1].name})


def report(name: str, result: dict[str, Any]) -> None:
    """Print one `brix autoscale-sim --optimizer` result (its JSON: fleets and comparison)."""
    comp: dict[str, Any] = result["comparison"]
    print(f"\n== {name}")
    for fleet in result["fleets"]:
        print(json.dumps(fleet))
    print(json.dumps({"comparison": comp}))
    ratio = comp.get("cost_ratio")
    if ratio is not None:
        verdict = "cheaper" if ratio < 0.995 else "same cost" if ratio <= 1.005 else "MORE EXPENSIVE"
        print(f"mixed / {comp['cheapest_single']}: gpu_cost ratio {ratio:.3f} ({verdict}); "
              f"SLO-violation seconds {comp['slo_violation_seconds']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed-a10", type=float, default=10.0, help="engine-mock --speed of the A10 while profiling")
    p.add_argument("--speed-a100", type=float, default=5.0, help="engine-mock --speed of the A100 while profiling")
    p.add_argument("--workdir", default="", help="where the profiles and logs go (default: a temporary folder)")
    p.add_argument("--reuse-profiles", action="store_true", help="use profiles already in --workdir")
    p.add_argument("--headroom", type=float, default=0.2, help="autoscale-sim --headroom for every fleet")
    args = p.parse_args()
    for need in (CONV, CODE, *AIBRIX):
        if not need.exists():
            print(f"missing {need}: this benchmark needs ../shared/data", file=sys.stderr)
            return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="brix-gpu-mix-"))
    workdir.mkdir(parents=True, exist_ok=True)
    extra = ["--headroom", str(args.headroom)]
    report("AIBrix A100 + A40 profiles, Splitwise conv + code mixed", sim(AIBRIX, [CONV, CODE], extra))
    speed = {"A10": args.speed_a10, "A100": args.speed_a100}
    profiles, seconds = make_profiles(workdir, speed, args.reuse_profiles)
    for gpu, s in seconds.items():
        print(f"\nbrix profile of engine-mock {gpu} ({BUCKETS} buckets, --slo {SLO}, --speed {speed[gpu]:g}; "
              f"both types at once): {s} s")
    for path in profiles:
        doc = json.loads(path.read_text())
        print(f"{path.name}: cost {doc['cost']}/h, tputs (rows: completion {doc['indexes'][0]}, "
              f"cols: prompt {doc['indexes'][1]}): {doc['tputs']}")
    docs = [json.loads(path.read_text()) for path in profiles]
    print("price per request, A100 / A10 (below 1: the A100 is cheaper there; '-': only one type serves it):")
    a10, a100 = docs
    for o, out in enumerate(a10["indexes"][0]):
        cells = [(a100["cost"] / y) / (a10["cost"] / x) if x > 0 and y > 0 else None
                 for x, y in zip(a10["tputs"][o], a100["tputs"][o], strict=True)]
        print(f"  completion {out:>5}: " + "  ".join("   -" if c is None else f"{c:4.2f}" for c in cells))
    for name, traces in (("conv + code", [CONV, CODE]), ("conv", [CONV]), ("code", [CODE])):
        print(f"fractional bound, {name}: each request on its cheapest type per request costs "
              f"{fractional_bound(docs, traces):.3f}x the A100 alone")
    report("engine-mock A10 + A100 (brix profile), Splitwise conv + code mixed", sim(profiles, [CONV, CODE], extra))
    report("engine-mock A10 + A100, Splitwise conv alone", sim(profiles, [CONV], extra))
    report("engine-mock A10 + A100, Splitwise code alone", sim(profiles, [CODE], extra))
    print(f"\nprofiles and logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
