"""Solver benchmarks for scheduler_ext.

1. GPU mix (Mélange ILP) on the AIBrix simulator profiles (llama2-7b on A100 and A40): solve time
   at slice factors 1, 4, 16 (goal < 100 ms at 4) for our aggregated formulation (one integer per
   bucket and type), next to Mélange's/AIBrix's formulation (one binary per slice and type) on the
   same solver, and the cost gap to the exact optimum (slices split continuously, the limit of an
   infinite slice factor) and to the LP relaxation.
2. LoRA placement (CP-SAT) for 200 pods x 1,000 adapters: solve time, moves and peak load, next to
   a greedy baseline (keep what fits, add missing replicas to the least-loaded pod).

    .venv/bin/python hack/bench/bench_scheduler_ext_solvers.py [--profiles DIR] [--lora-time-limit 20] [--lora-move-cost 0.1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scheduler_ext.solvers import lora_placement as lp  # noqa: E402
from scheduler_ext.solvers import melange  # noqa: E402
from scheduler_ext.solvers.profiles import load_profile  # noqa: E402

DEFAULT_PROFILES = Path(__file__).resolve().parents[3] / "shared" / "data" / "profiles"


def per_slice_binary(problem: melange.Problem) -> tuple[float, float]:
    """Mélange's own model: x[k][g] binary per slice, y[g] integer. Returns (cost, ms)."""
    from ortools.linear_solver import pywraplp

    started = time.perf_counter()
    total = sum(map(sum, problem.distribution))
    solver = pywraplp.Solver.CreateSolver("SCIP")
    y = {g.name: solver.IntVar(problem.min_count.get(g.name, 0), problem.max_count.get(g.name, solver.infinity()),
                               g.name) for g in problem.gpus}
    load = {g.name: [] for g in problem.gpus}
    for o, row in enumerate(problem.distribution):
        for i, v in enumerate(row):
            if v <= 0:
                continue
            rate = v / total * problem.rps / problem.slice_factor
            for _ in range(problem.slice_factor):
                xs = []
                for g in problem.gpus:
                    if g.tputs[o][i] > 0:
                        x = solver.BoolVar("")
                        xs.append(x)
                        load[g.name].append(x * (rate / g.tputs[o][i]))
                solver.Add(solver.Sum(xs) == 1)
    for g in problem.gpus:
        solver.Add(solver.Sum(load[g.name]) <= y[g.name])
    solver.Minimize(solver.Sum([g.cost * y[g.name] for g in problem.gpus]))
    solver.Solve()
    return solver.Objective().Value(), (time.perf_counter() - started) * 1000.0


def timed(fn, runs: int = 5):
    results = [fn() for _ in range(runs)]
    return results[-1], statistics.median(r[1] if isinstance(r, tuple) else r.solve_ms for r in results)


def bench_gpu_mix(profiles_dir: Path) -> None:
    a100, indexes, _ = load_profile(profiles_dir / "simulator-llama2-7b-a100.json")
    a40, _, _ = load_profile(profiles_dir / "simulator-llama2-7b-a40.json")
    rnd = random.Random(3)
    dist = [[rnd.random() if a100.tputs[o][i] > 0 else 0.0 for i in range(len(indexes[1]))]
            for o in range(len(indexes[0]))]
    print("GPU mix, AIBrix llama2-7b profiles A100 ($1.0) + A40 ($0.3), 8x5 buckets, random mix over feasible cells")
    for label, caps in (("A40 capped at 20 (availability)", {"simulator-llama2-7b-a40": 20}), ("no caps", {})):
        print(f"  scenario: 200 req/s, {label}")
        exact = melange.solve(melange.Problem([a100, a40], dist, 200, max_count=caps, continuous=True))
        lp_relax = melange.solve(melange.Problem([a100, a40], dist, 200, max_count=caps, relax=True))
        print(f"  {'slice':>5} | {'ours ms':>8} | {'Mélange binary ms':>17} | {'ours cost':>9} | {'binary cost':>11} | "
              f"{'gap to exact':>12} | replicas")
        for s in (1, 4, 16):
            problem = melange.Problem([a100, a40], dist, 200, slice_factor=s, max_count=caps)
            sol, ms = timed(lambda p=problem: melange.solve(p))
            (bcost, bms) = timed(lambda p=problem: per_slice_binary(p), runs=3)[0]
            gap = (sol.cost - exact.cost) / exact.cost * 100
            reps = {k.rsplit("-", 1)[-1]: v for k, v in sol.replicas.items()}
            goal = "  (goal < 100 ms)" if s == 4 else ""
            print(f"  {s:>5} | {ms:8.1f} | {bms:17.1f} | {sol.cost:9.2f} | {bcost:11.2f} | {gap:11.2f}% | {reps}{goal}")
        print(f"  exact (continuous split) cost {exact.cost:.2f} in {exact.solve_ms:.1f} ms; "
              f"LP relaxation {lp_relax.cost:.2f} ({lp_relax.solve_ms:.1f} ms) — not integral, a lower bound only")


def greedy(problem: lp.Problem) -> tuple[int, float, float]:
    """Baseline: the planner's own greedy start (keep what fits, add missing replicas to the
    least-loaded pod). Returns (moves, peak load, ms)."""
    started = time.perf_counter()
    placed = lp.greedy(problem)
    ms = (time.perf_counter() - started) * 1000.0
    adapters = {a.name: a for a in problem.adapters}
    peak = max(sum(lp.share(adapters[n]) for n in names) for names in placed.values()) / lp.SCALE
    cur = {(a, p) for p, names in problem.current.items() for a in names}
    new = {(a, p) for p, names in placed.items() for a in names}
    return len(cur ^ new), peak, ms


def bench_lora(time_limit: float, move_cost: float) -> None:
    rnd = random.Random(11)
    pods = [lp.EnginePod(f"engine-{i}", 8, 4096) for i in range(200)]
    adapters = []
    for j in range(1000):
        hot = rnd.random() < 0.1
        adapters.append(lp.Adapter(f"lora-{j}", rnd.choice([128, 256, 512]),
                                   rate=rnd.uniform(2, 10) if hot else (rnd.uniform(0, 0.5) if rnd.random() < 0.6 else 0),
                                   min_replicas=2 if hot else 0))
    current: dict[str, list[str]] = {}
    for j, a in enumerate(adapters[:900]):  # today: 900 adapters packed on 120 pods; 80 new empty pods
        current.setdefault(f"engine-{(j * 7) % 120}", []).append(a.name)
    problem = lp.Problem(pods, adapters, current, time_limit_s=time_limit, seed=1, workers=2, move_cost_rps=move_cost)
    g_moves, g_peak, g_ms = greedy(problem)
    plan = lp.solve(problem)
    print(f"LoRA placement, 200 pods (8 slots, 4 GiB) x 1,000 adapters (10% hot, min 2 replicas); 900 adapters "
          f"loaded on 120 pods, 80 pods new; time limit {time_limit}s, one move worth {move_cost} req/s of peak load")
    print(f"  {'planner':<22} | {'time ms':>9} | {'moves':>5} | {'peak load req/s':>15} | status")
    print(f"  {'CP-SAT (ours)':<22} | {plan.solve_ms:9.0f} | {plan.moves:>5} | {plan.max_load:15.2f} | "
          f"{'optimal' if plan.optimal else 'feasible' if plan.feasible else plan.reason}"
          f"{', search restricted to candidate pods' if plan.restricted else ''}")
    print(f"  {'greedy least-loaded':<22} | {g_ms:9.0f} | {g_moves:>5} | {g_peak:15.2f} | heuristic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES)
    parser.add_argument("--lora-time-limit", type=float, default=20.0)
    parser.add_argument("--lora-move-cost", type=float, default=0.1)
    parser.add_argument("--skip-lora", action="store_true")
    args = parser.parse_args()
    bench_gpu_mix(args.profiles)
    if not args.skip_lora:
        bench_lora(args.lora_time_limit, args.lora_move_cost)


if __name__ == "__main__":
    main()
