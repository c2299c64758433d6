"""GPU-mix targets per model: the workload reported for a model, the solver's answer, and the
cost-efficiency view the prioritize step uses. Pure data plus one call into the solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler_ext.gpu import matches, type_names
from scheduler_ext.model import Slo
from scheduler_ext.prioritize import CostView
from scheduler_ext.solvers import melange
from scheduler_ext.solvers.profiles import InputError, check_grid, workload_from_doc


@dataclass(frozen=True)
class ProfileEntry:
    profile: melange.GpuProfile
    indexes: list[list[int]] | None
    model: str | None  # None: applies to every model
    slos: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelTarget:
    namespace: str
    model: str
    replicas: dict[str, int]
    cost: float
    distribution: list[list[float]] | None
    rps: float | None
    solve_ms: float
    efficiency: dict[str, float]


class TargetStore:
    def __init__(self, profiles: list[ProfileEntry]) -> None:
        self.profiles = profiles
        self.targets: dict[tuple[str, str], ModelTarget] = {}

    def profiles_for(self, model: str) -> list[ProfileEntry]:
        return [p for p in self.profiles if p.model in (None, model)]

    def problem_from_workload(self, model: str, doc: Any) -> melange.Problem:
        """POST /v1/optimizer/workload body -> Problem (raises InputError / melange.ProblemError)."""
        entries = self.profiles_for(model)
        if not entries:
            raise InputError(f"no GPU profiles for model {model!r}; start the extender with --profiles DIR")
        distribution, indexes = workload_from_doc(doc, "workload")
        check_grid(entries[0].indexes, indexes, "workload")
        rps = doc.get("rps")
        if not isinstance(rps, (int, float)) or isinstance(rps, bool):
            raise InputError("workload: field rps (total requests/s for the model) must be a number")
        counts = {}
        for key in ("max", "min"):
            raw = doc.get(key) or {}
            if not isinstance(raw, dict) or not all(isinstance(v, int) for v in raw.values()):
                raise InputError(f"workload: field {key} must map GPU type -> integer count")
            counts[key] = raw
        return melange.Problem([e.profile for e in entries], distribution, float(rps),
                               slice_factor=int(doc.get("slice_factor", 4)), max_count=counts["max"],
                               min_count=counts["min"], time_limit_s=float(doc.get("time_limit_s", 5.0)))

    def set_from_solution(self, namespace: str, model: str, problem: melange.Problem,
                          solution: melange.Solution) -> ModelTarget:
        eff = {g.name: melange.efficiency(g, problem.distribution) for g in problem.gpus}
        target = ModelTarget(namespace, model, {k: int(v) for k, v in solution.replicas.items()}, solution.cost,
                             problem.distribution, problem.rps, solution.solve_ms, eff)
        self.targets[(namespace, model)] = target
        return target

    def set_replicas(self, namespace: str, model: str, replicas: dict[str, int]) -> ModelTarget:
        costs = {e.profile.name: e.profile.cost for e in self.profiles_for(model)}
        old = self.targets.get((namespace, model))
        target = ModelTarget(namespace, model, dict(replicas),
                             sum(costs.get(k, 0.0) * v for k, v in replicas.items()), None, None, 0.0,
                             old.efficiency if old else {})
        self.targets[(namespace, model)] = target
        return target

    def cost_view(self, namespace: str, model: str | None, running: dict[str, int],
                  slo: Slo | None) -> CostView | None:
        if not model:
            return None
        target = self.targets.get((namespace, model))
        if target is None or not target.efficiency:
            return None
        allowed = {e.profile.name for e in self.profiles_for(model) if slo_compatible(e, slo)}
        eff = {k: v for k, v in target.efficiency.items() if k in allowed and v > 0}
        # running is keyed by node GPU type; a profile type counts the nodes whose names match it
        deficit = {}
        for ptype, want in target.replicas.items():
            have = sum(n for node_type, n in running.items() if matches(ptype, type_names(node_type)))
            deficit[ptype] = want - have
        return CostView(eff, deficit)

    def prometheus_text(self, namespace: str, model: str) -> str | None:
        target = self.targets.get((namespace, model))
        if target is None:
            return None
        lines = ["# HELP brix_optimizer_target_replicas Replicas per GPU type at minimum cost for the model's workload.",
                 "# TYPE brix_optimizer_target_replicas gauge"]
        for gpu, n in sorted(target.replicas.items()):
            lines.append(f'brix_optimizer_target_replicas{{namespace="{namespace}",model="{model}",'
                         f'gpu_type="{gpu}"}} {n}')
        lines.append(f'brix_optimizer_target_cost{{namespace="{namespace}",model="{model}"}} {target.cost}')
        return "\n".join(lines) + "\n"


_SLO_FIELD = {"e2e": "e2e", "ttft": "ttft", "tpot": "tpot"}


def slo_compatible(entry: ProfileEntry, slo: Slo | None) -> bool:
    """A profile measured under a looser SLO than the pod's (same metric and percentile) does not
    tell how much that GPU serves within the pod's SLO, so it is left out of cost scoring."""
    if slo is None or not entry.slos:
        return True
    pct = entry.slos.get("percentile")
    for key, limit in slo.targets.items():
        metric, _, percentile = key.partition("_")
        profiled = entry.slos.get(_SLO_FIELD.get(metric, metric))
        if isinstance(profiled, (int, float)) and percentile == f"p{pct}" and profiled > limit:
            return False
    return True
