"""LoRA placement (CP-SAT): which engine pods load which adapters (pure).

Given engine pods (LoRA slots, adapter memory in MiB), adapters (size in MiB, request rate,
minimum replicas) and the current placement, choose x[a][p] (adapter a loaded on pod p) so that

- every adapter with demand (rate > 0) has at least max(min_replicas, 1) replicas, and an
  adapter without demand has at least its min_replicas; none has more than
  max(required, current replicas) (growth is the autoscaler's call, not the planner's);
- per pod: loaded adapters <= slots and their sizes <= memory;
- the busiest pod's load is low, where an adapter adds rate / required replicas to each pod that
  loads it (a conservative per-replica share), and few load/unload moves are made:

    minimise  move_cost * moves + max_load      (loads in units of 0.01 req/s)

  `move_cost_rps` says how many req/s of peak-load reduction one move is worth (default 1.0).

Deterministic for a given seed (one worker); `time_limit_s` bounds the search and the answer says
whether it was proven optimal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SCALE = 100  # load units per req/s


@dataclass(frozen=True)
class EnginePod:
    name: str
    slots: int
    memory_mib: int


@dataclass(frozen=True)
class Adapter:
    name: str
    size_mib: int
    rate: float = 0.0
    min_replicas: int = 0


@dataclass(frozen=True)
class Problem:
    pods: list[EnginePod]
    adapters: list[Adapter]
    current: dict[str, list[str]] = field(default_factory=dict)  # pod -> adapters loaded now
    move_cost_rps: float = 1.0
    time_limit_s: float = 10.0
    seed: int = 0
    workers: int = 1
    allowed: dict[str, list[str]] | None = None
    """adapter -> the only pods it may be placed on (a ModelAdapter's podSelector); adapters not
    named, or None, may go to every pod."""
    max_candidates: int | None = 24
    """Pods considered per adapter on large problems (None: all). Below this many pods the search is
    complete; above it each adapter may go to its current pods, the greedy plan's pods and
    max_candidates other pods (half least loaded, half drawn with the seed)."""


@dataclass(frozen=True)
class Plan:
    feasible: bool
    placement: dict[str, list[str]]  # pod -> adapters after the plan
    loads: list[tuple[str, str]]  # (adapter, pod) to load
    unloads: list[tuple[str, str]]  # (adapter, pod) to unload
    max_load: float  # req/s on the busiest pod (per the share model)
    optimal: bool
    solve_ms: float
    reason: str = ""
    restricted: bool = False  # the search was limited to candidate pods (see Problem.max_candidates)

    @property
    def moves(self) -> int:
        return len(self.loads) + len(self.unloads)

    def to_json(self) -> dict[str, object]:
        return {
            "feasible": self.feasible, "optimal": self.optimal, "reason": self.reason,
            "search": "restricted to candidate pods" if self.restricted else "complete",
            "placement": self.placement,
            "load": [{"adapter": a, "pod": p} for a, p in self.loads],
            "unload": [{"adapter": a, "pod": p} for a, p in self.unloads],
            "moves": self.moves, "max_load_rps": round(self.max_load, 4), "solve_ms": round(self.solve_ms, 2),
        }


class ProblemError(ValueError):
    """The state is malformed (unknown names, negative sizes)."""


def required(adapter: Adapter) -> int:
    return max(adapter.min_replicas, 1) if adapter.rate > 0 else adapter.min_replicas


def share(adapter: Adapter) -> int:
    """Load units an adapter adds to each pod that loads it."""
    need = required(adapter)
    return round(adapter.rate * SCALE / need) if need else 0


def validate(problem: Problem) -> None:
    pods = {p.name for p in problem.pods}
    adapters = {a.name for a in problem.adapters}
    for name, allowed in (problem.allowed or {}).items():
        if name not in adapters:
            raise ProblemError(f"allowed names adapter {name!r}, which is not in adapters")
        unknown = sorted(set(allowed) - pods)
        if unknown:
            raise ProblemError(f"allowed pods of adapter {name!r} name {unknown[0]!r}, which is not in pods")
    if len(pods) != len(problem.pods) or len(adapters) != len(problem.adapters):
        raise ProblemError("pod and adapter names must be unique")
    for p in problem.pods:
        if p.slots < 0 or p.memory_mib < 0:
            raise ProblemError(f"pod {p.name}: slots and memory_mib must be >= 0")
    for a in problem.adapters:
        if a.size_mib < 0 or a.rate < 0 or a.min_replicas < 0:
            raise ProblemError(f"adapter {a.name}: size_mib, rate and min_replicas must be >= 0")
    for pod, names in problem.current.items():
        if pod not in pods:
            raise ProblemError(f"current placement names pod {pod!r}, which is not in pods")
        for name in names:
            if name not in adapters:
                raise ProblemError(f"current placement of pod {pod!r} names adapter {name!r}, which is not in adapters")


def solve(problem: Problem) -> Plan:
    from ortools.sat.python import cp_model

    validate(problem)
    started = time.perf_counter()
    current = {(a, p) for p, names in problem.current.items() for a in names}
    cur_count = {a.name: 0 for a in problem.adapters}
    for a, _ in current:
        cur_count[a] += 1
    for a in problem.adapters:
        if required(a) > len(problem.pods):
            return _infeasible(started, f"adapter {a.name} needs {required(a)} replicas but there are only "
                                        f"{len(problem.pods)} pods")
        if required(a) and not any(_fits(a, p) and _may(problem, a, p) for p in problem.pods):
            return _infeasible(started, f"adapter {a.name} ({a.size_mib} MiB) fits on no pod")
        if required(a) > sum(1 for p in problem.pods if _may(problem, a, p)):
            return _infeasible(started, f"adapter {a.name} needs {required(a)} replicas but only "
                                        f"{sum(1 for p in problem.pods if _may(problem, a, p))} pods are allowed")
    hint = improve(problem, greedy(problem))
    candidates, restricted = _candidates(problem, hint)
    model = cp_model.CpModel()
    x: dict[tuple[str, str], cp_model.IntVar] = {}
    for a in problem.adapters:
        for pname in candidates[a.name]:
            x[(a.name, pname)] = model.NewBoolVar(f"x[{a.name},{pname}]")
    by_adapter: dict[str, list[cp_model.IntVar]] = {a.name: [] for a in problem.adapters}
    by_pod: dict[str, list[tuple[Adapter, cp_model.IntVar]]] = {p.name: [] for p in problem.pods}
    adapters = {a.name: a for a in problem.adapters}
    for (a, p), var in x.items():
        by_adapter[a].append(var)
        by_pod[p].append((adapters[a], var))
    for a in problem.adapters:
        need = required(a)
        model.Add(sum(by_adapter[a.name]) >= need)
        model.Add(sum(by_adapter[a.name]) <= max(need, cur_count[a.name]))
    max_share = sum(sorted((share(a) for a in problem.adapters), reverse=True)[:max(p.slots for p in problem.pods)]) \
        if problem.pods else 0
    peak = model.NewIntVar(0, max_share, "max_load")
    for p in problem.pods:
        items = by_pod[p.name]
        if not items:
            continue
        model.Add(sum(v for _, v in items) <= p.slots)
        model.Add(sum(a.size_mib * v for a, v in items) <= p.memory_mib)
        loaded = [(share(a), v) for a, v in items if share(a)]
        if loaded:
            model.Add(sum(s * v for s, v in loaded) <= peak)
    moves = [(1 - var) if key in current else var for key, var in x.items()]
    move_cost = max(1, round(problem.move_cost_rps * SCALE))
    model.Minimize(move_cost * sum(moves) + peak)
    hinted = {(a, p) for p, names in hint.items() for a in names}
    for key, var in x.items():
        model.AddHint(var, 1 if key in hinted else 0)
    model.AddHint(peak, max(_loads(problem, hint).values(), default=0))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = problem.time_limit_s
    solver.parameters.random_seed = problem.seed
    solver.parameters.num_workers = problem.workers
    status = solver.Solve(model)
    elapsed = (time.perf_counter() - started) * 1000.0
    if status == cp_model.INFEASIBLE:
        return _infeasible(started, "no placement satisfies slots, memory and minimum replicas")
    chosen = set()
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = {key for key, var in x.items() if solver.Value(var)}
    hinted_ok = _complete(problem, hint)
    if hinted_ok and (not chosen or _objective(problem, hint, current) < _objective(problem, _by_pod(problem, chosen),
                                                                                     current)):
        # CP-SAT did not beat its own starting point within the time limit (large problems, one
        # worker): the improved greedy plan is the answer, never something worse
        chosen, status = {(a, p) for p, names in hint.items() for a in names}, cp_model.FEASIBLE
    if not chosen and required_total(problem):
        return _infeasible(started, f"no placement found within {problem.time_limit_s}s")
    placement = _by_pod(problem, chosen)
    loads = sorted(chosen - current)
    unloads = sorted(current - chosen)
    return Plan(True, placement, loads, unloads, max(_loads(problem, placement).values(), default=0) / SCALE,
                status == cp_model.OPTIMAL and not restricted, elapsed, restricted=restricted)


def required_total(problem: Problem) -> int:
    return sum(required(a) for a in problem.adapters)


def _by_pod(problem: Problem, chosen: set[tuple[str, str]]) -> dict[str, list[str]]:
    placement: dict[str, list[str]] = {p.name: [] for p in problem.pods}
    for a, p in sorted(chosen):
        placement[p].append(a)
    return placement


def _loads(problem: Problem, placement: dict[str, list[str]]) -> dict[str, int]:
    adapters = {a.name: a for a in problem.adapters}
    return {p: sum(share(adapters[n]) for n in names) for p, names in placement.items()}


def _complete(problem: Problem, placement: dict[str, list[str]]) -> bool:
    """Every adapter has its required replicas in this placement."""
    count: dict[str, int] = {}
    for names in placement.values():
        for n in names:
            count[n] = count.get(n, 0) + 1
    return all(count.get(a.name, 0) >= required(a) for a in problem.adapters)


def _objective(problem: Problem, placement: dict[str, list[str]], current: set[tuple[str, str]]) -> int:
    """The solver's objective (move_cost x moves + peak, in load units) for a placement."""
    chosen = {(a, p) for p, names in placement.items() for a in names}
    moves = len(chosen ^ current)
    return max(1, round(problem.move_cost_rps * SCALE)) * moves + max(_loads(problem, placement).values(), default=0)


def improve(problem: Problem, placement: dict[str, list[str]]) -> dict[str, list[str]]:
    """Local search on a placement (the solver's hint): move one replica at a time off the
    busiest pod to the least-loaded pod that may take it, or else swap it with a lighter replica
    of another pod, while that lowers the busiest pod's load and the other pod stays below it.
    A step costs two or four moves (unload + load), so the answer is the step count whose
    move_cost x moves + peak is lowest; with a high move cost (a repair) that is usually no step."""
    pods = {p.name: p for p in problem.pods}
    adapters = {a.name: a for a in problem.adapters}
    current = {(a, p) for p, names in problem.current.items() for a in names}
    placed = {p: list(names) for p, names in placement.items()}
    load = _loads(problem, placed)
    mem = {p: sum(adapters[n].size_mib for n in names) for p, names in placed.items()}
    best, best_score = {p: list(n) for p, n in placed.items()}, _objective(problem, placed, current)
    for _ in range(4 * sum(len(n) for n in placed.values()) + 1):
        src = max(load, key=lambda p: (load[p], p))
        step = None
        for name in sorted(placed[src], key=lambda n: (-share(adapters[n]), n)):
            a, s = adapters[name], share(adapters[name])
            if s == 0:
                continue
            options = [q for q in placed if q != src and name not in placed[q] and _may(problem, a, pods[q])
                       and len(placed[q]) < pods[q].slots and mem[q] + a.size_mib <= pods[q].memory_mib
                       and load[q] + s < load[src]]
            if options:
                step = [(name, src, min(options, key=lambda q: (load[q], q)))]
                break
        if step is None:
            step = _swap(problem, pods, adapters, placed, load, mem, src)
        if step is None:
            break
        for name, frm, to in step:
            placed[frm].remove(name)
            placed[to].append(name)
            size, s = adapters[name].size_mib, share(adapters[name])
            load[frm] -= s
            load[to] += s
            mem[frm] -= size
            mem[to] += size
        score = _objective(problem, placed, current)
        if score < best_score:
            best, best_score = {p: list(n) for p, n in placed.items()}, score
    return best


def _swap(problem: Problem, pods: dict[str, EnginePod], adapters: dict[str, Adapter],
          placed: dict[str, list[str]], load: dict[str, int], mem: dict[str, int],
          src: str) -> list[tuple[str, str, str]] | None:
    """The swap of a replica on `src` with a lighter one elsewhere that lowers `src` the most
    while the other pod ends below `src`'s load now (None when there is none)."""
    best: tuple[int, list[tuple[str, str, str]]] | None = None
    for name in placed[src]:
        a, sa = adapters[name], share(adapters[name])
        for q, names in placed.items():
            if q == src or name in names or not _may(problem, a, pods[q]):
                continue
            for other in names:
                b, sb = adapters[other], share(adapters[other])
                if sb >= sa or other in placed[src] or not _may(problem, b, pods[src]):
                    continue
                if load[q] + sa - sb >= load[src]:
                    continue
                if (mem[q] + a.size_mib - b.size_mib > pods[q].memory_mib
                        or mem[src] - a.size_mib + b.size_mib > pods[src].memory_mib):
                    continue
                gain = sa - sb
                if best is None or gain > best[0]:
                    best = (gain, [(name, src, q), (other, q, src)])
    return None if best is None else best[1]


def _fits(adapter: Adapter, pod: EnginePod) -> bool:
    return adapter.size_mib <= pod.memory_mib and pod.slots > 0


def _may(problem: Problem, adapter: Adapter, pod: EnginePod) -> bool:
    """The adapter may be placed on the pod (Problem.allowed)."""
    return problem.allowed is None or adapter.name not in problem.allowed or pod.name in problem.allowed[adapter.name]


def greedy(problem: Problem) -> dict[str, list[str]]:
    """A quick plan (also the solver's starting hint): keep current placements that fit, then add
    missing replicas, hottest adapters first, each to the least-loaded pod with room."""
    pods = {p.name: p for p in problem.pods}
    adapters = {a.name: a for a in problem.adapters}
    placed: dict[str, list[str]] = {p.name: [] for p in problem.pods}
    mem = dict.fromkeys(pods, 0)
    load = dict.fromkeys(pods, 0)
    for pname, names in problem.current.items():
        for name in names:
            a = adapters[name]
            if not _may(problem, a, pods[pname]):
                continue
            if len(placed[pname]) < pods[pname].slots and mem[pname] + a.size_mib <= pods[pname].memory_mib:
                placed[pname].append(name)
                mem[pname] += a.size_mib
                load[pname] += share(a)
    for a in sorted(problem.adapters, key=lambda a: (-a.rate, a.name)):
        have = sum(1 for names in placed.values() if a.name in names)
        for _ in range(required(a) - have):
            options = [p for p in pods if a.name not in placed[p] and _may(problem, a, pods[p])
                       and len(placed[p]) < pods[p].slots
                       and mem[p] + a.size_mib <= pods[p].memory_mib]
            if not options:
                break
            best = min(options, key=lambda p: (load[p], p))
            placed[best].append(a.name)
            mem[best] += a.size_mib
            load[best] += share(a)
    return placed


def _candidates(problem: Problem, hint: dict[str, list[str]]) -> tuple[dict[str, list[str]], bool]:
    """Pods each adapter may be placed on. An adapter without demand and without a minimum only
    stays or goes (loading it elsewhere is a move that buys nothing), so that is exact."""
    import random

    current: dict[str, set[str]] = {a.name: set() for a in problem.adapters}
    for pname, names in problem.current.items():
        for name in names:
            current[name].add(pname)
    hinted: dict[str, set[str]] = {a.name: set() for a in problem.adapters}
    for pname, names in hint.items():
        for name in names:
            hinted[name].add(pname)
    limit = problem.max_candidates
    restricted = limit is not None and len(problem.pods) > limit
    if restricted:
        load = {p.name: 0 for p in problem.pods}
        adapters = {a.name: a for a in problem.adapters}
        for pname, names in hint.items():
            load[pname] = sum(share(adapters[n]) for n in names)
        by_load = sorted(problem.pods, key=lambda p: (load[p.name], p.name))
        rnd = random.Random(problem.seed)
    out: dict[str, list[str]] = {}
    for a in problem.adapters:
        may = {p.name for p in problem.pods if _may(problem, a, p)}
        if a.rate <= 0 and a.min_replicas == 0:
            out[a.name] = sorted(current[a.name] & may)
            continue
        if not restricted:
            out[a.name] = [p.name for p in problem.pods if _fits(a, p) and p.name in may]
            continue
        assert limit is not None
        chosen = current[a.name] | hinted[a.name]
        chosen.update(p.name for p in by_load[:limit // 2] if _fits(a, p))
        chosen.update(p.name for p in rnd.sample(problem.pods, min(limit - limit // 2, len(problem.pods)))
                      if _fits(a, p))
        out[a.name] = sorted(chosen & may)
    return out, restricted


def _infeasible(started: float, reason: str) -> Plan:
    return Plan(False, {}, [], [], 0.0, False, (time.perf_counter() - started) * 1000.0, reason)


def problem_from_doc(doc: object, where: str = "state") -> Problem:
    """The `brix lora-plan --state` JSON/YAML document -> Problem (see scheduler_ext/README.md)."""
    if not isinstance(doc, dict):
        raise ProblemError(f"{where}: expected an object with pods, adapters and current")
    try:
        pods = [EnginePod(str(p["name"]), int(p.get("slots", 1)), int(p.get("memory_mib", 0)))
                for p in doc.get("pods") or []]
        adapters = [Adapter(str(a["name"]), int(a.get("size_mib", 0)), float(a.get("rate", 0.0)),
                            int(a.get("min_replicas", 0))) for a in doc.get("adapters") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProblemError(f"{where}: bad pod or adapter entry ({exc!r}); each needs a name, "
                           "pods take slots and memory_mib, adapters size_mib, rate, min_replicas") from None
    current = doc.get("current") or {}
    if not isinstance(current, dict) or not all(isinstance(v, list) for v in current.values()):
        raise ProblemError(f"{where}: current must map pod name -> list of adapter names")
    opts = doc.get("options") or {}
    problem = Problem(pods, adapters, {str(k): [str(x) for x in v] for k, v in current.items()},
                   move_cost_rps=float(opts.get("move_cost_rps", 1.0)),
                   time_limit_s=float(opts.get("time_limit_s", 10.0)), seed=int(opts.get("seed", 0)),
                   workers=int(opts.get("workers", 1)),
                   max_candidates=None if opts.get("max_candidates", 24) is None else int(opts.get("max_candidates", 24)))
    validate(problem)
    return problem
