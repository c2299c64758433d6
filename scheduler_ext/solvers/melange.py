"""GPU mix: the Mélange ILP — the cheapest number of replicas per GPU type for a workload (pure).

Inputs: per GPU type a cost and `tputs[o][i]`, the most requests/s one replica serves for output
bucket o and input bucket i while meeting the SLO (0.0 = cannot meet it: that cell is never
used, never divided by); a workload distribution on the same grid and a total request rate.
Each bucket's rate is cut into `slice_factor` equal slices; each slice goes to one GPU type; a
type's replicas must carry the load of its slices, where one replica of type g carries 1 unit of
`rate / tputs[g]`.

Slices of one bucket are interchangeable, so instead of Mélange's one binary per slice and type
we use one integer per bucket and type, `n[b][g]` in 0..slice_factor, with sum_g n[b][g] = s. The
feasible allocations and the optimum are the same; the model is smaller and has no symmetry.

    minimise   sum_g cost_g * y_g
    subject to sum_g n[b][g] = s                                  for every bucket b with load
               sum_b n[b][g] * rate_b / (s * tput_g[b]) <= y_g    for every type g
               min_g <= y_g <= max_g,  n[b][g] = 0 where tput_g[b] = 0

`continuous=True` lets slices be any fraction (the limit of an infinite slice factor): the exact
optimum that every slice factor is measured against. `relax=True` solves the LP relaxation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuProfile:
    name: str
    cost: float
    tputs: list[list[float]]  # [output bucket][input bucket] requests/s under the SLO


@dataclass(frozen=True)
class Problem:
    gpus: list[GpuProfile]
    distribution: list[list[float]]  # same grid as tputs; normalised by the solver
    rps: float
    slice_factor: int = 4
    max_count: dict[str, int] = field(default_factory=dict)
    min_count: dict[str, int] = field(default_factory=dict)
    time_limit_s: float = 10.0
    continuous: bool = False
    relax: bool = False


@dataclass(frozen=True)
class Solution:
    feasible: bool
    replicas: dict[str, int | float]
    cost: float
    solve_ms: float
    reason: str = ""
    optimal: bool = True
    # bucket (o, i) -> gpu type -> share of that bucket's requests
    assignment: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)


class ProblemError(ValueError):
    """The problem is malformed (shapes, negative numbers, unknown names)."""


def validate(problem: Problem) -> None:
    if not problem.gpus:
        raise ProblemError("no GPU profiles given")
    names = [g.name for g in problem.gpus]
    if len(set(names)) != len(names):
        raise ProblemError(f"duplicate GPU type names: {names}")
    rows, cols = len(problem.distribution), len(problem.distribution[0]) if problem.distribution else 0
    if rows == 0 or cols == 0 or any(len(r) != cols for r in problem.distribution):
        raise ProblemError("workload distribution must be a non-empty rectangular matrix")
    for g in problem.gpus:
        if len(g.tputs) != rows or any(len(r) != cols for r in g.tputs):
            raise ProblemError(f"profile {g.name}: tputs is {len(g.tputs)}x{len(g.tputs[0]) if g.tputs else 0}, "
                               f"workload distribution is {rows}x{cols}; they must share the bucket grid")
        if g.cost < 0 or any(v < 0 for r in g.tputs for v in r):
            raise ProblemError(f"profile {g.name}: cost and tputs must be >= 0")
    if any(v < 0 for r in problem.distribution for v in r) or sum(map(sum, problem.distribution)) <= 0:
        raise ProblemError("workload distribution needs non-negative fractions with a positive sum")
    if problem.rps < 0:
        raise ProblemError(f"rps must be >= 0, got {problem.rps}")
    if problem.slice_factor < 1:
        raise ProblemError(f"slice factor must be >= 1, got {problem.slice_factor}")
    for label, counts in (("max", problem.max_count), ("min", problem.min_count)):
        for name, n in counts.items():
            if name not in names:
                raise ProblemError(f"--{label} names GPU type {name!r}, not one of the profiles: {', '.join(names)}")
            if n < 0:
                raise ProblemError(f"--{label} {name}={n}: must be >= 0")
    for name, lo in problem.min_count.items():
        if lo > problem.max_count.get(name, lo):
            raise ProblemError(f"GPU type {name}: min {lo} is above max {problem.max_count[name]}")


def solve(problem: Problem) -> Solution:
    from ortools.linear_solver import pywraplp

    validate(problem)
    started = time.perf_counter()
    total = sum(map(sum, problem.distribution))
    rates = {(o, i): v / total * problem.rps
             for o, row in enumerate(problem.distribution) for i, v in enumerate(row) if v > 0}
    for (o, i), _ in rates.items():
        if all(g.tputs[o][i] <= 0 for g in problem.gpus):
            return Solution(False, {}, 0.0, _ms(started),
                            reason=f"bucket [output {o}][input {i}] has requests but no GPU type can serve it "
                                   "within the SLO (every profile's tput is 0 there)")
    solver = pywraplp.Solver.CreateSolver("GLOP" if problem.relax else "SCIP")
    if solver is None:  # pragma: no cover - SCIP ships with ortools
        raise RuntimeError("OR-Tools has no SCIP backend")
    solver.SetTimeLimit(int(problem.time_limit_s * 1000))
    s = problem.slice_factor
    share_int = not (problem.continuous or problem.relax)
    y = {}
    for g in problem.gpus:
        hi = problem.max_count.get(g.name, solver.infinity())
        lo = problem.min_count.get(g.name, 0)
        y[g.name] = (solver.NumVar if problem.relax else solver.IntVar)(lo, hi, f"y_{g.name}")
    n = {}
    load: dict[str, list[Any]] = {g.name: [] for g in problem.gpus}
    for (o, i), rate in rates.items():
        row = []
        for g in problem.gpus:
            tput = g.tputs[o][i]
            if tput <= 0:
                continue
            var = (solver.IntVar if share_int else solver.NumVar)(0, s, f"n_{o}_{i}_{g.name}")
            n[(o, i, g.name)] = var
            row.append(var)
            load[g.name].append(var * (rate / (s * tput)))
        solver.Add(solver.Sum(row) == s)
    for g in problem.gpus:
        if load[g.name]:
            solver.Add(solver.Sum(load[g.name]) <= y[g.name])
    solver.Minimize(solver.Sum([g.cost * y[g.name] for g in problem.gpus]))
    status = solver.Solve()
    elapsed = _ms(started)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        caps = ", ".join(f"{k}<={v}" for k, v in problem.max_count.items()) or "none"
        why = ("no allocation serves the workload within the limits (max per GPU type: " + caps + ")"
               if status == pywraplp.Solver.INFEASIBLE else f"the solver stopped without a solution (status {status})")
        return Solution(False, {}, 0.0, elapsed, reason=why, optimal=False)
    replicas: dict[str, int | float] = {}
    for g in problem.gpus:
        value = y[g.name].solution_value()
        replicas[g.name] = value if problem.relax else int(round(value))
    assignment: dict[tuple[int, int], dict[str, float]] = {}
    for (o, i, name), var in n.items():
        share = var.solution_value() / s
        if share > 1e-9:
            assignment.setdefault((o, i), {})[name] = share
    cost = sum(g.cost * replicas[g.name] for g in problem.gpus)
    return Solution(True, replicas, cost, elapsed, optimal=status == pywraplp.Solver.OPTIMAL,
                    assignment=assignment)


def efficiency(gpu: GpuProfile, distribution: list[list[float]]) -> float:
    """Requests/s per unit cost one replica of `gpu` serves on the whole workload mix (0 when some
    bucket with requests cannot be served by it). Used to rank GPU types for a model."""
    total = sum(map(sum, distribution))
    if total <= 0:
        return 0.0
    load = 0.0
    for o, row in enumerate(distribution):
        for i, v in enumerate(row):
            if v > 0:
                tput = gpu.tputs[o][i]
                if tput <= 0:
                    return 0.0
                load += (v / total) / tput
    if load <= 0:
        return 0.0
    return (1.0 / load) / gpu.cost if gpu.cost > 0 else float("inf")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
