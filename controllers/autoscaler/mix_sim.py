"""`brix autoscale-sim --optimizer`: a fleet of several GPU types scaled by GPU-mix targets (pure).

The loop it replays is the one a cluster runs: the gateway's workload window (request rate per
prompt x completion bucket over `window_s`) -> every `interval_s` the GPU-mix plan of
`scheduler_ext.gpu_mix` (Mélange ILP + hysteresis) -> one PodAutoscaler per GPU type whose source
is the optimizer (the controller's own `decide()`, KPA) -> pods that are Ready `startup_delay_s`
after the scale-up that made them.

The serving model, one step per second: requests wait per grid bucket; a Ready pod of type g
serves up to tputs_g[bucket] requests/s of a bucket (the profile's highest rate that meets the
SLO), so serving n requests of bucket b takes n / tputs_g[b] of its second. Each second the
queued buckets go first to the types with the largest relative advantage on them (tputs_g[b]
over the best tputs of any type there). A second whose leftover queue would take the whole
fleet longer than `slo_queue_s` to drain (or that has requests no Ready pod can serve) is an
SLO-violation second. Every allocated pod, starting or Ready, costs its profile's `cost` per hour.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from brix.token_buckets import grid_index
from controllers.autoscaler.decide import Inputs, decide
from controllers.autoscaler.metrics import Observation
from controllers.autoscaler.model import DeciderState, parse_spec
from scheduler_ext import gpu_mix
from scheduler_ext.solvers.melange import GpuProfile

Request = tuple[float, int, int]  # (arrival s, prompt tokens, completion tokens)


@dataclass(frozen=True)
class MixSimConfig:
    interval_s: int = 10
    """Seconds between GPU-mix solves (brix scheduler-ext --mix-interval)."""
    window_s: int = 60
    """The gateway's workload window (brix gateway --workload-window)."""
    startup_delay_s: float = 60.0
    slo_queue_s: float = 2.0
    max_replicas: int = 64
    """maxReplicas of each GPU type's PodAutoscaler."""
    policy: gpu_mix.MixPolicy = field(default_factory=gpu_mix.MixPolicy)


@dataclass
class MixSimResult:
    fleet: str
    gpu_types: list[str]
    feasible: bool = True
    reason: str = ""
    replica_seconds: dict[str, float] = field(default_factory=dict)
    gpu_cost: dict[str, float] = field(default_factory=dict)
    slo_violation_seconds: int = 0
    oscillations: int = 0
    max_replicas: dict[str, int] = field(default_factory=dict)
    target_changes: int = 0
    replicas: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total_cost(self) -> float:
        return sum(self.gpu_cost.values())

    def summary(self) -> dict[str, object]:
        if not self.feasible:
            return {"fleet": self.fleet, "feasible": False, "reason": self.reason}
        return {"fleet": self.fleet, "gpu_cost": round(self.total_cost, 4),
                "gpu_cost_by_type": {k: round(v, 4) for k, v in self.gpu_cost.items()},
                "replica_seconds": round(sum(self.replica_seconds.values()), 1),
                "replica_seconds_by_type": {k: round(v, 1) for k, v in self.replica_seconds.items()},
                "slo_violation_seconds": self.slo_violation_seconds, "oscillations": self.oscillations,
                "max_replicas": self.max_replicas, "target_changes": self.target_changes}


def load_requests(paths: Sequence[str | Path]) -> list[Request]:
    """Requests of one or more traces (`arrived_at, num_prefill_tokens, num_decode_tokens` CSVs, e.g. Splitwise),
    each shifted to start at 0, merged by arrival time."""
    out: list[Request] = []
    for path in paths:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = {"arrived_at", "num_prefill_tokens", "num_decode_tokens"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise ValueError(f"{path}: --optimizer needs a request trace with columns {', '.join(sorted(need))} "
                                 f"(e.g. ../shared/data/traces/splitwise_conv.csv), got {reader.fieldnames}")
            rows = []
            for i, r in enumerate(reader):
                try:
                    rows.append((float(r["arrived_at"]), int(r["num_prefill_tokens"]), int(r["num_decode_tokens"])))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: row {i + 2}: expected numbers, got {r!r}") from None
        if not rows:
            raise ValueError(f"{path}: no requests")
        t0 = min(t for t, _, _ in rows)
        out.extend((t - t0, p, c) for t, p, c in rows)
    out.sort()
    return out


def per_second_grid(requests: Sequence[Request], indexes: list[list[int]]) -> list[list[list[float]]]:
    """counts[t][output bucket][input bucket] of arrivals in second t."""
    outputs, inputs = indexes
    seconds = int(max(t for t, _, _ in requests)) + 1 if requests else 0
    counts = [[[0.0] * len(inputs) for _ in outputs] for _ in range(seconds)]
    for t, p, c in requests:
        counts[int(t)][grid_index(c, outputs)][grid_index(p, inputs)] += 1.0
    return counts


def _spec(gpu_type: str, cfg: MixSimConfig):  # type: ignore[no-untyped-def]
    return parse_spec({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"sim-{gpu_type}"},
        "scalingStrategy": "KPA", "minReplicas": 0, "maxReplicas": cfg.max_replicas,
        "metricsSources": [{"type": "optimizer", "url": "http://sim", "gpuType": gpu_type}],
    })


def simulate_mix(counts: Sequence[list[list[float]]], gpus: Sequence[GpuProfile], cfg: MixSimConfig,
                 fleet: str = "") -> MixSimResult:
    names = [g.name for g in gpus]
    res = MixSimResult(fleet or "+".join(names), names)
    rows, cols = len(counts[0]), len(counts[0][0])
    buckets = [(o, i) for o in range(rows) for i in range(cols)]
    for o, i in buckets:
        if any(counts[t][o][i] for t in range(len(counts))) and all(g.tputs[o][i] <= 0 for g in gpus):
            res.feasible = False
            res.reason = f"bucket [output {o}][input {i}] has requests that no GPU type in {res.fleet} serves within the SLO"
            return res
    best = {(o, i): max(g.tputs[o][i] for g in gpus) for o, i in buckets}
    order = sorted(((g.tputs[o][i] / best[(o, i)], k, (o, i)) for k, g in enumerate(gpus) for o, i in buckets
                    if g.tputs[o][i] > 0), reverse=True)
    memory = gpu_mix.MixMemory()
    specs = {g.name: _spec(g.name, cfg) for g in gpus}
    states = {g.name: DeciderState() for g in gpus}
    key = {g.name: specs[g.name].sources[0].key for g in gpus}

    def rates_at(t: int) -> tuple[list[list[float]], float]:
        lo = max(0, t + 1 - cfg.window_s)
        span = float(t + 1 - lo)
        grid = [[sum(counts[s][o][i] for s in range(lo, t + 1)) / span for i in range(cols)] for o in range(rows)]
        return grid, sum(map(sum, grid))

    # a fleet already warm for the first window of the trace
    first = gpu_mix.plan(list(gpus), *rates_at(min(cfg.window_s, len(counts)) - 1), memory, 0.0, cfg.policy)
    if first.targets is None:
        res.feasible, res.reason = False, first.reason
        return res
    ready_at = {n: [0.0] * min(first.targets.get(n, 0), cfg.max_replicas) for n in names}
    targets = dict(first.targets)
    last_dir = {n: 0 for n in names}
    queue = {b: 0.0 for b in buckets}
    for n in names:
        res.replica_seconds[n] = res.gpu_cost[n] = 0.0
        res.max_replicas[n] = 0
        res.replicas[n] = []
    for t in range(len(counts)):
        now = float(t)
        for o, i in buckets:
            queue[(o, i)] += counts[t][o][i]
        ready = {n: sum(1 for r in ready_at[n] if r <= now) for n in names}
        spare = {n: float(ready[n]) for n in names}
        for _, k, b in order:
            g = gpus[k]
            q = queue[b]
            if q <= 1e-9 or spare[g.name] <= 1e-12:
                continue
            served = min(q, spare[g.name] * g.tputs[b[0]][b[1]])
            queue[b] = q - served
            spare[g.name] -= served / g.tputs[b[0]][b[1]]
        drain = 0.0
        for b, q in queue.items():
            if q <= 1e-9:
                continue
            fleet_rate = sum(ready[g.name] * g.tputs[b[0]][b[1]] for g in gpus)
            drain = math.inf if fleet_rate <= 0 else drain + q / fleet_rate
        if drain > cfg.slo_queue_s:
            res.slo_violation_seconds += 1
        if t > 0 and t % cfg.interval_s == 0:
            got = gpu_mix.plan(list(gpus), *rates_at(t), memory, now, cfg.policy)
            if got.targets is not None:
                res.target_changes += int(got.changed)
                targets = dict(got.targets)
        for g in gpus:
            n = g.name
            current = len(ready_at[n])
            ob = Observation(float(targets.get(n, 0)), float(targets.get(n, 0)), per_pod=False)
            decision, states[n] = decide(specs[n], Inputs(current, ready[n], {key[n]: ob}), states[n], now)
            if decision.due and decision.desired != current:
                direction = 1 if decision.desired > current else -1
                if last_dir[n] and direction != last_dir[n]:
                    res.oscillations += 1
                last_dir[n] = direction
                if direction > 0:
                    ready_at[n] += [now + cfg.startup_delay_s] * (decision.desired - current)
                else:
                    ready_at[n].sort()   # starting pods (largest ready_at) go first
                    del ready_at[n][decision.desired:]
            allocated = len(ready_at[n])
            res.replica_seconds[n] += allocated
            res.gpu_cost[n] += allocated * g.cost / 3600.0
            res.max_replicas[n] = max(res.max_replicas[n], allocated)
            res.replicas[n].append(allocated)
    return res


def format_table(results: Sequence[MixSimResult]) -> str:
    cols = ("fleet", "gpu_cost", "replica_seconds", "slo_violation_seconds", "oscillations", "gpu_cost_by_type")
    rows = []
    for r in results:
        s = r.summary()
        if not r.feasible:
            rows.append([r.fleet, "infeasible", "-", "-", "-", r.reason])
            continue
        rows.append([str(s[c]) if c != "gpu_cost_by_type" else
                     ", ".join(f"{k} {v:.3f}" for k, v in r.gpu_cost.items()) for c in cols])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def compare(mixed: MixSimResult, singles: Sequence[MixSimResult]) -> dict[str, object]:
    """The mixed fleet against the cheapest single-type fleet that can serve every request."""
    usable = [s for s in singles if s.feasible]
    if not usable or not mixed.feasible:
        return {"cheapest_single": None, "cost_ratio": None}
    cheapest = min(usable, key=lambda s: s.total_cost)
    ratio = mixed.total_cost / cheapest.total_cost if cheapest.total_cost > 0 else None
    return {"cheapest_single": cheapest.fleet, "cheapest_single_cost": round(cheapest.total_cost, 4),
            "mixed_cost": round(mixed.total_cost, 4), "cost_ratio": None if ratio is None else round(ratio, 4),
            "slo_violation_seconds": {"mixed": mixed.slo_violation_seconds,
                                      "cheapest_single": cheapest.slo_violation_seconds}}
