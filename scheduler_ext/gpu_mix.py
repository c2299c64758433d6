"""GPU-mix targets that follow a live workload without flapping (pure; time passed in).

Every interval the loop (`gpu_mix_loop.py`, or `brix autoscale-sim --optimizer`) calls `plan` with
the workload seen now. Two solves of the Mélange ILP:

- the optimum: the cheapest mix for the workload (times 1 + headroom);
- the grown mix: the cheapest mix that keeps at least the replicas held now.

Hysteresis (`step`):
- which types: a GPU type not running now is brought in only when the workload's mix makes it
  worth it for good: when the workload served at fractional replicas, each bucket by its cheapest
  type per request, costs less by more than `down_margin` with every type than with the running
  types alone (`open_types`; with nothing running, than with the cheapest single type). Otherwise
  the solves keep to the running types. An integer optimum alone would bring in a cheap type to
  fill the remainder of the current rate (5 A100s and an A10 rather than 6 A100s): that remainder
  moves every interval, while the new replicas start, are held through the down delay and round
  up in their own autoscaler, so the saving never comes;
- up at once: when the held mix cannot carry the workload, the grown mix is adopted (it only adds
  replicas, so a spike never tears down what runs). It grows the types the optimum has more of than
  held where that carries the workload (a replica the optimum does not want is paid for until the
  down path removes it);
- down (or a re-mix to other GPU types) late: only when, for `down_delay_s` since the last change,
  every optimum was cheaper than the held mix by more than `down_margin`; the adopted mix is the
  replica-wise maximum of those optima, which carries every workload of that stretch.

Noise around a level therefore never changes the targets, and a lasting shift of the mix (longer
prompts, say) moves them within `down_delay_s`. A workload the profiles cannot serve, or no
workload reading at all, keeps the held targets.
"""

from __future__ import annotations

import math
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


def per_request_cost(gpus: list[melange.GpuProfile], distribution: list[list[float]], types: set[str]) -> float:
    """The workload's cost per hour at fractional replicas (per unit of rate, any unit): each bucket
    served wholly by its cheapest type per request among `types`; inf when a bucket with load has none."""
    total = 0.0
    for o, row in enumerate(distribution):
        for i, share in enumerate(row):
            if share <= 0:
                continue
            best = min((g.cost / g.tputs[o][i] for g in gpus if g.name in types and g.tputs[o][i] > 0),
                       default=float("inf"))
            total += share * best
    return total


def open_types(gpus: list[melange.GpuProfile], distribution: list[list[float]], rps: float, running: set[str],
               policy: MixPolicy) -> set[str]:
    """The GPU types the solves may use for this workload (`distribution` on the grid, `rps` in all): the
    running ones (with nothing running, the single type that serves the whole workload with the cheapest
    whole replicas), and every type when that makes the workload cheaper for good, by more than
    `down_margin` at fractional replicas (so not by filling an integer remainder); every type too when the
    base cannot serve the workload at all."""
    everything = {g.name for g in gpus}
    base = running
    if not base:
        total = sum(map(sum, distribution)) or 1.0
        scale = rps * (1.0 + policy.headroom) / total

        def alone(g: melange.GpuProfile) -> float:   # whole replicas of g alone, times its price
            replicas = scale * per_request_cost([g], distribution, {g.name}) / g.cost if g.cost > 0 else 0.0
            return math.ceil(replicas - 1e-9) * g.cost if replicas < float("inf") else replicas
        price = {g.name: alone(g) for g in gpus}
        cheapest = min(sorted(price), key=lambda name: price[name])
        base = {cheapest} if price[cheapest] < float("inf") else everything
    if per_request_cost(gpus, distribution, everything) < per_request_cost(gpus, distribution, base) * (
            1.0 - policy.down_margin):
        return everything
    return set(base)


def step(memory: MixMemory, now: float, optimum: dict[str, int], grown: dict[str, int],
         costs: Mapping[str, float], policy: MixPolicy, allow_down: bool = True) -> tuple[bool, str]:
    """Update memory.held from this interval's optimum and grown mix; (changed, why)."""
    if memory.held is None:
        memory.held, memory.changed_at, memory.history = dict(optimum), now, [(now, dict(optimum))]
        return True, "first targets"
    held = memory.held
    memory.history.append((now, dict(optimum)))
    memory.history = [(t, m) for t, m in memory.history if t >= now - policy.down_delay_s - 1e-9]
    if any(grown.get(g, 0) > held.get(g, 0) for g in grown):
        why = "the held mix cannot carry the workload: added replicas"
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
    floor = {g: n for g, n in (memory.held or {}).items() if g in costs and n > 0}
    closed: dict[str, int] = {}   # max_count 0 for the types the solves may not bring in
    if rps > 0:
        allowed = open_types(gpus, distribution, rps, set(floor), policy)
        closed = {g: 0 for g in costs if g not in allowed}

    def solve(min_count: dict[str, int], max_count: dict[str, int]) -> melange.Solution:
        return melange.solve(melange.Problem(gpus, distribution, rps * (1.0 + policy.headroom),
                                             slice_factor=policy.slice_factor, min_count=min_count,
                                             max_count={**max_count, **closed}, time_limit_s=time_limit_s))
    if rps <= 0:
        optimum, ms = dict(zero), 0.0
    else:
        best = solve({}, {})
        ms = best.solve_ms
        if not best.feasible:
            held = memory.held
            return MixPlan(held, False, f"kept the held targets: {best.reason}", rps, None,
                           mix_cost(held or {}, costs), ms)
        optimum = {k: int(v) for k, v in best.replicas.items()}
    grown = dict(optimum)
    if memory.held is not None:
        grown = dict(memory.held)
        if rps > 0:
            # the cheapest mix with at least the held replicas: the held mix itself when it carries the workload
            # growing only the types the optimum has more of (replicas the optimum does not want would be
            # paid for until the down path removes them), else any type
            toward = {g: memory.held.get(g, 0) for g in costs if optimum.get(g, 0) <= memory.held.get(g, 0)}
            for cap in (toward, {}):
                more = solve(floor, cap)
                ms += more.solve_ms
                if more.feasible:
                    grown = {k: int(v) for k, v in more.replicas.items()}
                    break
    changed, why = step(memory, now, optimum, grown, costs, policy, allow_down)
    held = memory.held or {}
    return MixPlan(dict(held), changed, why, rps, optimum, mix_cost(held, costs), ms)
