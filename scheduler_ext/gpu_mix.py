"""GPU-mix targets that follow a live workload without flapping (pure; time passed in).

Every interval the loop (`gpu_mix_loop.py`, or `brix autoscale-sim --optimizer`) calls `plan` with
the workload seen now. Two solves of the Mélange ILP:

- the optimum: the cheapest mix for the workload (times 1 + headroom);
- the grown mix: the cheapest mix that keeps at least the replicas held now.

Hysteresis (`step`):
- up at once: when the held mix cannot carry the workload, the grown mix is adopted (it only adds
  replicas, so a spike never tears down what runs). It grows the types the optimum has more of than
  held where that carries the workload (a replica the optimum does not want is paid for until the
  down path removes it), and it brings in a GPU type not running now only when that is cheaper by
  more than `down_margin` than growing the running types (the switching cost: the new replicas start
  and are held through the down delay for a saving that must outlast them);
- down (or a re-mix to other GPU types) late: only when, for `down_delay_s` since the last change,
  every optimum was cheaper than the held mix by more than `down_margin`; the adopted mix is the
  replica-wise maximum of those optima, which carries every workload of that stretch.

Noise around a level therefore never changes the targets, and a lasting shift of the mix (longer
prompts, say) moves them within `down_delay_s`. A workload the profiles cannot serve, or no
workload reading at all, keeps the held targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler_ext.solvers import melange


@dataclass(frozen=True)
class MixPolicy:
    down_delay_s: float = 60.0
    """A cheaper mix is adopted only after every optimum this long (since the last change) was cheaper."""
    down_margin: float = 0.1
    """...cheaper by more than this fraction of the held mix's cost."""
    headroom: float = 0.0
    """Solve for the measured rate times 1 + headroom (spare capacity for bursts inside the window)."""
    slice_factor: int = 4
    """Mélange's slices per bucket."""


@dataclass
class MixMemory:
    """What the hysteresis keeps between intervals, per model."""

    held: dict[str, int] | None = None
    changed_at: float = 0.0
    history: list[tuple[float, dict[str, int]]] = field(default_factory=list)


@dataclass(frozen=True)
class MixPlan:
    targets: dict[str, int] | None   # None: no targets yet (nothing feasible so far)
    changed: bool
    reason: str
    rps: float
    optimum: dict[str, int] | None
    cost: float
    solve_ms: float


def mix_cost(replicas: Mapping[str, int], costs: Mapping[str, float]) -> float:
    return sum(costs.get(g, 0.0) * n for g, n in replicas.items())


def prefer_running(mix: dict[str, int], same: dict[str, int] | None, costs: Mapping[str, float],
                   policy: MixPolicy) -> dict[str, int]:
    """The switching cost: `mix` brings in GPU types not running now; `same` carries the same workload on
    the running types only. `mix` is worth it only when cheaper than `same` by more than `down_margin`."""
    if same is not None and mix_cost(mix, costs) > mix_cost(same, costs) * (1.0 - policy.down_margin):
        return dict(same)
    return dict(mix)


def step(memory: MixMemory, now: float, optimum: dict[str, int], grown: dict[str, int],
         costs: Mapping[str, float], policy: MixPolicy, allow_down: bool = True,
         stay: dict[str, int] | None = None) -> tuple[bool, str]:
    """Update memory.held from this interval's optimum and grown mix; (changed, why).

    stay: the cheapest mix that carries the workload growing only the GPU types running now (None: none
    does). A grown mix that brings in a type not running now is adopted only when it is cheaper than stay
    by more than `down_margin` (the switching cost: a new type's replicas start, and are held through the
    down delay, for a saving that must outlast them); otherwise stay is adopted.
    """
    if memory.held is None:
        memory.held, memory.changed_at, memory.history = dict(optimum), now, [(now, dict(optimum))]
        return True, "first targets"
    held = memory.held
    memory.history.append((now, dict(optimum)))
    memory.history = [(t, m) for t, m in memory.history if t >= now - policy.down_delay_s - 1e-9]
    if any(grown.get(g, 0) > held.get(g, 0) for g in grown):
        why = "the held mix cannot carry the workload: added replicas"
        new_types = any(n > 0 and held.get(g, 0) <= 0 for g, n in grown.items())
        if new_types and stay is not None and all(stay.get(g, 0) >= n for g, n in held.items()):
            kept = prefer_running(grown, stay, costs, policy)
            if kept != grown:
                grown, why = kept, why + " of the running GPU types (a new type is not cheaper by the margin)"
        memory.held, memory.changed_at, memory.history = dict(grown), now, [(now, dict(optimum))]
        return True, why
    if not allow_down or now - memory.changed_at < policy.down_delay_s - 1e-9:
        return False, "held"
    limit = mix_cost(held, costs) * (1.0 - policy.down_margin)
    if any(mix_cost(m, costs) > limit for _, m in memory.history):
        return False, "held (the optimum was not cheaper by the margin all along)"
    names = set(held) | {g for _, m in memory.history for g in m}
    candidate = {g: max(m.get(g, 0) for _, m in memory.history) for g in sorted(names)}
    if candidate == held or mix_cost(candidate, costs) > limit:
        return False, "held (the optima together are not cheaper by the margin)"
    memory.held, memory.changed_at, memory.history = candidate, now, [(now, dict(optimum))]
    return True, f"cheaper mix for {policy.down_delay_s:g}s"


def plan(gpus: list[melange.GpuProfile], distribution: list[list[float]], rps: float, memory: MixMemory,
         now: float, policy: MixPolicy, allow_down: bool = True, time_limit_s: float = 5.0) -> MixPlan:
    """Solve for the workload (distribution on the profiles' grid, rps in total) and apply the hysteresis."""
    costs = {g.name: g.cost for g in gpus}
    zero = {g.name: 0 for g in gpus}
    if rps <= 0:
        optimum, ms = dict(zero), 0.0
    else:
        problem = melange.Problem(gpus, distribution, rps * (1.0 + policy.headroom),
                                  slice_factor=policy.slice_factor, time_limit_s=time_limit_s)
        best = melange.solve(problem)
        ms = best.solve_ms
        if not best.feasible:
            held = memory.held
            return MixPlan(held, False, f"kept the held targets: {best.reason}", rps, None,
                           mix_cost(held or {}, costs), ms)
        optimum = {k: int(v) for k, v in best.replicas.items()}
    grown = dict(optimum)
    stay: dict[str, int] | None = None
    if memory.held is not None:
        grown = dict(memory.held)
        floor = {g: n for g, n in memory.held.items() if g in costs and n > 0}
        if rps > 0:
            # the cheapest mix with at least the held replicas: the held mix itself when it carries the workload
            # growing only the types the optimum has more of (replicas the optimum does not want would be
            # paid for until the down path removes them), else any type
            toward = {g: memory.held.get(g, 0) for g in costs if optimum.get(g, 0) <= memory.held.get(g, 0)}
            for cap in (toward, {}):
                problem = melange.Problem(gpus, distribution, rps * (1.0 + policy.headroom),
                                          slice_factor=policy.slice_factor, min_count=floor, max_count=cap,
                                          time_limit_s=time_limit_s)
                more = melange.solve(problem)
                ms += more.solve_ms
                if more.feasible:
                    grown = {k: int(v) for k, v in more.replicas.items()}
                    break
            running = {g for g, n in floor.items() if n > 0}
            if running and any(n > 0 and g not in running for g, n in grown.items()):
                # the switching cost: the same, growing only the types running now
                problem = melange.Problem(gpus, distribution, rps * (1.0 + policy.headroom),
                                          slice_factor=policy.slice_factor, min_count=floor,
                                          max_count={g: 0 for g in costs if g not in running},
                                          time_limit_s=time_limit_s)
                same = melange.solve(problem)
                ms += same.solve_ms
                if same.feasible:
                    stay = {k: int(v) for k, v in same.replicas.items()}
    changed, why = step(memory, now, optimum, grown, costs, policy, allow_down, stay)
    held = memory.held or {}
    return MixPlan(dict(held), changed, why, rps, optimum, mix_cost(held, costs), ms)

