"""GPU-mix targets that follow the workload (pure): the gateways' readings summed and put on the
profile grid, targets that move when the request mix shifts and hold under noise."""

from __future__ import annotations

import random

import pytest

from scheduler_ext import gpu_mix
from scheduler_ext.solvers.melange import GpuProfile
from scheduler_ext.solvers.profiles import InputError
from scheduler_ext.workload_feed import on_grid, parse_gateway_workload, sum_workloads

# grid: completion ticks [64], prompt ticks [256, 4096]
INDEXES = [[64], [256, 4096]]
SMALL = GpuProfile("small", 1.0, [[10.0, 0.5]])    # cheap, good at short prompts
BIG = GpuProfile("big", 3.0, [[20.0, 4.0]])        # 3x the price, 8x the throughput on long prompts
POLICY = gpu_mix.MixPolicy(down_delay_s=60.0, down_margin=0.1)


def gateway_doc(cells: dict[tuple[int, int], float]) -> dict[str, object]:
    return {"window_s": 60, "models": {"llama": {"cells": [
        {"prompt_tokens": p, "completion_tokens": c, "rps": r} for (p, c), r in cells.items()]}}}


def test_gateway_replicas_are_summed_and_mapped_onto_the_profile_grid() -> None:
    a = parse_gateway_workload(gateway_doc({(128, 32): 6.0, (4096, 64): 1.0}), "gw-a")
    b = parse_gateway_workload(gateway_doc({(256, 64): 4.0, (16384, 2048): 0.5}), "gw-b")
    total = sum_workloads([a, b])
    grid, rps = on_grid(total["llama"], INDEXES)
    # prompts round up to the next tick and beyond the last one count in the last; same for completions
    assert grid == [[10.0, 1.5]] and rps == 11.5


def test_a_malformed_gateway_answer_is_refused_with_where() -> None:
    with pytest.raises(InputError, match=r"gw: models.llama.cells\[0\] needs numeric"):
        parse_gateway_workload({"models": {"llama": {"cells": [{"prompt_tokens": "x"}]}}}, "gw")


def run(mix: list[tuple[float, float]], memory: gpu_mix.MixMemory, start: float,
        interval: float = 10.0) -> list[dict[str, int]]:
    """One plan per interval for (short rps, long rps) readings; the targets after each."""
    out = []
    for k, (short, long_) in enumerate(mix):
        plan = gpu_mix.plan([SMALL, BIG], [[short, long_]], short + long_, memory, start + k * interval, POLICY)
        assert plan.targets is not None
        out.append(plan.targets)
    return out


def test_targets_hold_under_noise_where_the_bare_optimum_flaps() -> None:
    rng = random.Random(3)
    readings = [(rng.uniform(17.0, 23.0), 0.0) for _ in range(90)]   # 15 minutes of short prompts, +-15 %
    memory = gpu_mix.MixMemory()
    targets = run(readings, memory, 0.0)
    optima = [gpu_mix.plan([SMALL, BIG], [[s, 0.0]], s, gpu_mix.MixMemory(), 0.0, POLICY).optimum
              for s, _ in readings]
    flaps = sum(1 for x, y in zip(optima, optima[1:], strict=False) if x != y)
    changes = sum(1 for x, y in zip(targets, targets[1:], strict=False) if x != y)
    assert flaps >= 20                     # the optimum alone moves between 2 and 3 replicas all the time
    assert changes <= 1                    # the held targets: at most one step up, then nothing
    assert targets[-1] == {"small": 3, "big": 0}
    assert all(3 * 10.0 >= s for s, _ in readings[10:])   # and they carry every reading after that step


def test_targets_follow_a_shifted_mix_within_the_down_delay() -> None:
    memory = gpu_mix.MixMemory()
    short = run([(20.0, 0.0)] * 12, memory, 0.0)
    assert short[-1] == {"small": 2, "big": 0}
    # the prompts get long: 3 req/s of 4k-token prompts replace the chats
    after = run([(2.0, 3.0)] * 12, memory, 120.0)
    # at once: the held 2 small cannot carry 3 long req/s, so big replicas are added, nothing removed
    assert after[0]["big"] >= 1 and after[0]["small"] == 2
    # then, once the cheaper mix was cheaper for the whole down delay (60 s), the small ones go
    switched = next(k for k, t in enumerate(after) if t != after[0])
    assert switched * 10.0 <= POLICY.down_delay_s + 10.0
    assert after[-1] == {"small": 0, "big": 1}


def test_a_partial_reading_never_shrinks_and_no_profile_fit_keeps_the_targets() -> None:
    memory = gpu_mix.MixMemory()
    run([(30.0, 0.0)] * 3, memory, 0.0)
    held = dict(memory.held or {})
    for k in range(20):   # a gateway is down: the others report half the load
        plan = gpu_mix.plan([SMALL, BIG], [[15.0, 0.0]], 15.0, memory, 30.0 + 10 * k, POLICY, allow_down=False)
        assert plan.targets == held
    only_small = gpu_mix.plan([GpuProfile("small", 1.0, [[10.0, 0.0]])], [[1.0, 1.0]], 2.0, memory, 300.0, POLICY)
    assert only_small.targets == held and "no GPU type can serve" in only_small.reason


def test_a_new_gpu_type_comes_in_for_a_lasting_saving_not_to_fill_a_remainder() -> None:
    # the same price per request on short prompts: a third of the price for a third of the rate
    small, big = GpuProfile("small", 1.0, [[10.0, 0.5]]), GpuProfile("big", 3.0, [[30.0, 4.0]])
    memory = gpu_mix.MixMemory({"small": 0, "big": 2}, 0.0, [(0.0, {"small": 0, "big": 2})])   # 2 big run
    # 65 req/s: 2 big + 1 small (7) is 22 % cheaper than 3 big (9), but only by filling the integer
    # remainder of this rate; per request the types cost the same, so the running type grows
    plan = gpu_mix.plan([small, big], [[65.0, 0.0]], 65.0, memory, 10.0, POLICY)
    assert plan.optimum == {"small": 0, "big": 3} and memory.held == {"small": 0, "big": 3}
    assert gpu_mix.open_types([small, big], [[65.0, 0.0]], 65.0, {"big"}, POLICY) == {"big"}
    # with nothing running, the fleet starts on the cheapest single type (not 6 big + 1 small for 65 req/s)
    assert gpu_mix.plan([small, big], [[65.0, 0.0]], 65.0, gpu_mix.MixMemory(), 0.0, POLICY).targets in (
        {"small": 0, "big": 3}, {"small": 7, "big": 0})
    # and on the type whose whole replicas cost least: 20 req/s is 2 small (2), not 1 big (3)
    assert gpu_mix.open_types([small, big], [[20.0, 0.0]], 20.0, set(), POLICY) == {"small"}
    # a mix where the other type is cheaper per request for good (long prompts on big) brings it in
    memory = gpu_mix.MixMemory()
    gpu_mix.plan([small, big], [[20.0, 0.0]], 20.0, memory, 0.0, POLICY)
    assert memory.held == {"small": 2, "big": 0}
    assert gpu_mix.open_types([small, big], [[2.0, 3.0]], 5.0, {"small"}, POLICY) == {"small", "big"}
    plan = gpu_mix.plan([small, big], [[2.0, 3.0]], 5.0, memory, 10.0, POLICY)
    assert memory.held["big"] >= 1
    # a bucket no running type serves makes any type pay
    only_long = GpuProfile("small", 1.0, [[10.0, 0.0]])
    assert gpu_mix.per_request_cost([only_long, big], [[1.0, 1.0]], {"small"}) == float("inf")
    assert gpu_mix.open_types([only_long, big], [[1.0, 1.0]], 2.0, {"small"}, POLICY) == {"small", "big"}


def test_plan_grows_toward_the_optimum_and_not_with_replicas_it_does_not_want() -> None:
    memory = gpu_mix.MixMemory()
    run([(2.0, 3.0)], memory, 0.0)                     # long prompts: 1 big
    assert memory.held == {"small": 0, "big": 1}
    # more long prompts: the running big type grows (a new small type would not save the margin)
    after = run([(2.0, 7.0)], memory, 10.0)
    assert after[-1]["big"] == 2 and after[-1]["small"] == 0
