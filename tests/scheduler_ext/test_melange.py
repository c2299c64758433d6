"""The GPU-mix ILP against brute force and Mélange's toy example."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_ext.solvers.melange import GpuProfile, Problem, ProblemError, efficiency, solve

A10G = GpuProfile("A10G", 1.01, [[2, 1], [5, 2]])
A100 = GpuProfile("A100", 3.67, [[20, 20], [40, 20]])
TOY_DIST = [[0.2, 0.1], [0.5, 0.2]]


def brute_force(problem: Problem) -> float | None:
    """Cheapest cost over every assignment of every slice to a GPU type (Mélange's x[k][g])."""
    total = sum(map(sum, problem.distribution))
    slices = []
    for o, row in enumerate(problem.distribution):
        for i, v in enumerate(row):
            if v > 0:
                slices += [((o, i), v / total * problem.rps / problem.slice_factor)] * problem.slice_factor
    best = None
    for choice in itertools.product(range(len(problem.gpus)), repeat=len(slices)):
        load = [0.0] * len(problem.gpus)
        ok = True
        for ((o, i), rate), g in zip(slices, choice, strict=True):
            tput = problem.gpus[g].tputs[o][i]
            if tput <= 0:
                ok = False
                break
            load[g] += rate / tput
        if not ok:
            continue
        cost = 0.0
        for g, gpu in enumerate(problem.gpus):
            count = max(math.ceil(load[g] - 1e-9), problem.min_count.get(gpu.name, 0))
            if count > problem.max_count.get(gpu.name, count):
                ok = False
                break
            cost += count * gpu.cost
        if ok and (best is None or cost < best - 1e-9):
            best = cost
    return best


def test_melange_toy_example_matches_brute_force():
    problem = Problem([A10G, A100], TOY_DIST, 30, slice_factor=1)
    solution = solve(problem)
    assert solution.feasible and solution.optimal
    assert solution.cost == pytest.approx(brute_force(problem))
    assert solution.replicas == {"A10G": 3, "A100": 1}  # $6.70/h; A100 alone needs 2 ($7.34/h)
    # every bucket is served, and each type's replicas carry its load
    assert set(solution.assignment) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_max_count_and_min_replicas_are_respected():
    capped = solve(Problem([A10G, A100], TOY_DIST, 30, slice_factor=1, max_count={"A100": 0}))
    assert capped.replicas == {"A10G": 12, "A100": 0}
    floor = solve(Problem([A10G, A100], TOY_DIST, 30, slice_factor=1, min_count={"A10G": 4}))
    assert floor.replicas["A10G"] >= 4
    assert floor.cost == pytest.approx(brute_force(Problem([A10G, A100], TOY_DIST, 30, slice_factor=1,
                                                           min_count={"A10G": 4})))


def test_infeasible_problems_say_why():
    only_zero = GpuProfile("L4", 0.5, [[0, 1], [1, 1]])
    sol = solve(Problem([only_zero], TOY_DIST, 10, slice_factor=1))
    assert not sol.feasible and "bucket [output 0][input 0]" in sol.reason
    sol = solve(Problem([A10G], TOY_DIST, 30, slice_factor=1, max_count={"A10G": 3}))
    assert not sol.feasible and "A10G<=3" in sol.reason


def test_malformed_problems_raise_with_the_field():
    with pytest.raises(ProblemError, match="share the bucket grid"):
        solve(Problem([GpuProfile("x", 1, [[1]])], TOY_DIST, 1))
    with pytest.raises(ProblemError, match="'H100', not one of the profiles"):
        solve(Problem([A10G], TOY_DIST, 1, max_count={"H100": 1}))


def test_zero_cells_are_never_used_and_efficiency_skips_them():
    half = GpuProfile("half", 0.1, [[0, 100], [100, 100]])
    sol = solve(Problem([half, A100], TOY_DIST, 30, slice_factor=2))
    assert "half" not in sol.assignment[(0, 0)]
    assert efficiency(half, TOY_DIST) == 0.0
    assert efficiency(half, [[0, 1], [0, 0]]) == pytest.approx(100 / 0.1)


def test_continuous_split_bounds_every_slice_factor():
    exact = solve(Problem([A10G, A100], TOY_DIST, 30, continuous=True)).cost
    for s in (1, 2, 4):
        assert solve(Problem([A10G, A100], TOY_DIST, 30, slice_factor=s)).cost >= exact - 1e-9


cells = st.floats(min_value=0.5, max_value=30).map(lambda v: round(v, 2)) | st.just(0.0)


@settings(max_examples=25, deadline=None)
@given(
    t1=st.lists(st.lists(cells, min_size=2, max_size=2), min_size=2, max_size=2),
    t2=st.lists(st.lists(cells, min_size=2, max_size=2), min_size=2, max_size=2),
    c1=st.floats(0.2, 5).map(lambda v: round(v, 2)),
    c2=st.floats(0.2, 5).map(lambda v: round(v, 2)),
    dist=st.lists(st.lists(st.integers(0, 5), min_size=2, max_size=2), min_size=2, max_size=2)
    .filter(lambda d: sum(map(sum, d)) > 0),
    rps=st.integers(1, 40),
    slice_factor=st.integers(1, 2),
)
def test_random_small_problems_match_brute_force(t1, t2, c1, c2, dist, rps, slice_factor):
    problem = Problem([GpuProfile("g1", c1, t1), GpuProfile("g2", c2, t2)], [[float(v) for v in r] for r in dist],
                      rps, slice_factor=slice_factor)
    expected = brute_force(problem)
    solution = solve(problem)
    if expected is None:
        assert not solution.feasible
    else:
        assert solution.feasible and solution.cost == pytest.approx(expected, rel=1e-6, abs=1e-6)
