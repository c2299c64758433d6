"""`brix autoscale-sim`: replay a request-rate trace through engine pods and the controller's decide().

The pod model (pure, one step per second):
  * every pod serves `pod_capacity` requests/s once Ready; a new pod is Ready `startup_delay`
    seconds after the scale-up that made it; a scale-down removes starting pods first;
  * requests wait in one queue (the gateway holds them while no pod is Ready); a second whose
    queue would take longer than `slo_queue` seconds to drain (or that has a queue and no Ready
    pod) is an SLO-violation second;
  * each Ready pod reports load = (served + queued) / Ready pods as its metric once a second,
    the target being pod_capacity x target_utilization (Knative's 70 % by default).
Every allocated pod, starting or Ready, costs one replica-second per second.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controllers.autoscaler.decide import Inputs, decide
from controllers.autoscaler.metrics import Window, observe
from controllers.autoscaler.model import AutoscalerSpec, DeciderState, parse_spec

SIM_METRIC = "load"


@dataclass(frozen=True)
class SimConfig:
    pod_capacity: float = 1.0
    startup_delay_s: float = 60.0
    slo_queue_s: float = 2.0
    target_utilization: float = 0.7
    min_replicas: int = 1
    max_replicas: int = 64
    initial_replicas: int = -1
    """Pods Ready at t=0; -1 = sized for the trace's first minute (a fleet already warm)."""


@dataclass
class SimResult:
    strategy: str
    replica_seconds: float = 0.0
    slo_violation_seconds: int = 0
    oscillations: int = 0
    max_replicas: int = 0
    scale_events: int = 0
    demand: list[float] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        return {"strategy": self.strategy, "replica_seconds": round(self.replica_seconds, 1),
                "slo_violation_seconds": self.slo_violation_seconds, "oscillations": self.oscillations,
                "max_replicas": self.max_replicas, "scale_events": self.scale_events}


def load_trace(path: str | Path) -> list[float]:
    """Requests per second from a CSV: `t,rps` rows, or a request trace whose first column is an
    arrival time in seconds (e.g. Splitwise's arrived_at), binned per second."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: empty trace")
    header = [h.strip().lower() for h in rows[0]]
    body = rows[1:] if not _is_number(rows[0][0]) else rows
    if len(header) >= 2 and header[:2] == ["t", "rps"]:
        out: list[float] = []
        for i, r in enumerate(body):
            try:
                t, rps = int(float(r[0])), float(r[1])
            except (ValueError, IndexError):
                raise ValueError(f"{path}: row {i + 2}: expected t,rps numbers, got {r!r}") from None
            if t < 0 or rps < 0:
                raise ValueError(f"{path}: row {i + 2}: t and rps must be >= 0")
            if t >= len(out):
                out.extend([0.0] * (t + 1 - len(out)))
            out[t] = rps
        return out
    times = []
    for i, r in enumerate(body):
        try:
            times.append(float(r[0]))
        except (ValueError, IndexError):
            raise ValueError(f"{path}: row {i + 2}: the first column must be an arrival time in seconds") from None
    if not times:
        raise ValueError(f"{path}: no requests")
    t0 = min(times)
    out = [0.0] * (int(max(times) - t0) + 1)
    for t in times:
        out[int(t - t0)] += 1.0
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def bursty_trace(seconds: int = 3600, seed: int = 7, base: float = 4.0, burst: float = 24.0) -> list[float]:
    """A synthetic bursty rate: Poisson arrivals around a slow daily-like wave, plus 20-90 s bursts
    every 2-8 minutes (deterministic for a seed)."""
    rng = random.Random(seed)
    rate = [base * (1 + 0.5 * math.sin(2 * math.pi * t / 1800)) for t in range(seconds)]
    t = rng.randint(60, 240)
    while t < seconds:
        length = rng.randint(20, 90)
        height = burst * rng.uniform(0.5, 1.0)
        for s in range(t, min(seconds, t + length)):
            rate[s] += height
        t += length + rng.randint(120, 480)
    return [float(_poisson(rng, r)) for r in rate]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def sim_spec(strategy: str, cfg: SimConfig, overrides: dict[str, object] | None = None) -> AutoscalerSpec:
    doc: dict[str, object] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sim"},
        "scalingStrategy": strategy, "minReplicas": cfg.min_replicas, "maxReplicas": cfg.max_replicas,
        "metricsSources": [{"type": "pod", "metric": SIM_METRIC,
                            "targetValue": cfg.pod_capacity * cfg.target_utilization}],
    }
    doc.update(overrides or {})
    return parse_spec(doc)


def simulate(rps: Sequence[float], spec: AutoscalerSpec, cfg: SimConfig) -> SimResult:
    res = SimResult(spec.strategy)
    state = DeciderState()
    window = Window(keep_s=max(spec.stable_window_s, 60) + 10)
    key = spec.sources[0].key
    initial = cfg.initial_replicas
    if initial < 0:
        first = list(rps[:60]) or [0.0]
        initial = math.ceil(sum(first) / len(first) / (cfg.pod_capacity * cfg.target_utilization))
    initial = min(max(initial, spec.min_replicas), spec.max_replicas)
    ready_at: list[float] = [0.0] * initial   # one entry per allocated pod
    queue = 0.0
    last_dir = 0
    for t, arrivals in enumerate(rps):
        now = float(t)
        ready = sum(1 for r in ready_at if r <= now)
        queue += arrivals
        capacity = ready * cfg.pod_capacity
        served = min(queue, capacity)
        load = queue / ready if ready else 0.0
        queue -= served
        if queue > 1e-9 and (ready == 0 or queue / capacity > cfg.slo_queue_s):
            res.slo_violation_seconds += 1
        pods = {f"pod-{i}": load for i in range(ready)}
        window.forget_pods(set(pods))
        window.record_pods(now, pods, ready)
        ob = observe(window, now, spec.stable_window_s, spec.panic_window_s, True, spec.sync_period_s)
        inp = Inputs(current=len(ready_at), ready=ready, observations={key: ob}, held=queue if ready == 0 else 0.0)
        decision, state = decide(spec, inp, state, now)
        if decision.due and decision.desired != len(ready_at):
            direction = 1 if decision.desired > len(ready_at) else -1
            if last_dir and direction != last_dir:
                res.oscillations += 1
            last_dir = direction
            res.scale_events += 1
            if direction > 0:
                ready_at += [now + cfg.startup_delay_s] * (decision.desired - len(ready_at))
            else:
                ready_at.sort()   # starting pods (largest ready_at) go first
                del ready_at[decision.desired:]
        res.replica_seconds += len(ready_at)
        res.max_replicas = max(res.max_replicas, len(ready_at))
        res.demand.append(arrivals)
        res.replicas.append(len(ready_at))
    return res


def format_table(results: Sequence[SimResult]) -> str:
    cols = ("strategy", "replica_seconds", "slo_violation_seconds", "oscillations", "max_replicas")
    rows = [[str(r.summary()[c]) for c in cols] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
