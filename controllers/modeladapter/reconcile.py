"""ModelAdapter decisions as pure functions: what to load and unload where, and what the status says.

A round is: `plan(adapters, pods, state, now)` -> placement and actions; the handlers do the
actions and hand the outcomes to `record(...)`; `summarize(...)` turns what is loaded afterwards
into each adapter's status and the pods its EndpointSlice lists. Time (`now`) and randomness
(`rng`, for backoff jitter) come in as arguments.

Placement: every active adapter of a namespace goes into one CP-SAT LoRA placement problem
(scheduler_ext/solvers/lora_placement.py): pods that match its podSelector, are Ready, not being
deleted and answer GET /v1/models; their --max-loras slots less the adapters no ModelAdapter owns;
the current placement (status.instances, and where it is loaded now) so that few adapters move.
Each adapter weighs its recent request rate (AdapterView.rate, from controllers/modeladapter/rates.py).
The solver runs when some adapter has fewer or more replicas than wanted (a repair: only the
adapters that must be placed move, the lowest peak among such placements) or, at most once per
rebalance_interval_s, when the busiest pod's load is over rebalance_ratio times the best possible
(a rebalance: a move must buy rebalance_move_cost x the mean pod load of peak reduction);
otherwise the placement stands and only drift (an adapter missing from a pod it was placed on) is
repaired.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from controllers.conditions import set_condition
from controllers.modeladapter.model import MODEL_LABEL, AdapterView, Attempt, PodView, State
from scheduler_ext.solvers import lora_placement as lp


@dataclass(frozen=True)
class Settings:
    drain_s: float = 1.0
    """An adapter leaves the EndpointSlice this long before it is unloaded, so that gateways watching
    the slice stop routing to the pod first."""
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    solve_time_s: float = 5.0
    unready_grace_s: float = 30.0
    """A placed pod that stops answering or turns unready (an engine restart) keeps its adapters this
    long; they are loaded again when it is back, and moved elsewhere only after that."""
    rebalance_ratio: float = 1.5
    """With every adapter at its replica count, placement is solved again only when the busiest pod's
    load (measured rates, rate / replicas per pod that loads it) exceeds this many times the best
    any placement could do: max(mean pod load, the largest single share)."""
    rebalance_min_rps: float = 1.0
    """... and exceeds it by at least this many req/s (idle adapters never move)."""
    rebalance_interval_s: float = 60.0
    """At most one rebalance solve per namespace in this long (rates are windowed; no flapping)."""
    rebalance_move_cost: float = 0.05
    """In a rebalance solve, one load or unload is worth this fraction of the mean pod load of
    peak reduction; a repair solve (replicas missing or in excess) makes every optional move cost
    more than any peak gain, so only the adapters that must be placed move."""


@dataclass(frozen=True)
class Action:
    kind: str                    # "load" | "unload"
    adapter: str
    pod: str
    url: str                     # http://<podIP>:<port>
    lora_path: str = ""
    api_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    permanent: bool = False      # a 4xx from the engine: not retried
    message: str = ""


@dataclass(frozen=True)
class Scheduling:
    ok: bool
    reason: str
    message: str


@dataclass
class Plan:
    placement: dict[str, tuple[str, ...]]        # adapter -> pods it should be loaded on
    desired: dict[str, int]                      # adapter -> desiredReplicas
    scheduling: dict[str, Scheduling]
    actions: list[Action] = field(default_factory=list)
    solved: bool = False
    solver_note: str = ""


def is_failed(a: AdapterView, state: State) -> str | None:
    """The permanent error of this generation, if any (from this process or from status)."""
    mine = state.failed.get(a.name)
    if mine and mine[0] == a.generation:
        return mine[1]
    if a.failed_generation == a.generation:
        return a.failed_message or "load failed"
    return None


def eligible(a: AdapterView, pods: list[PodView]) -> list[PodView]:
    if a.spec is None:
        return []
    base = a.spec.base_model
    return [p for p in pods if p.usable and p.slots > 0 and a.spec.selector.matches(p.labels)
            and (base is None or base in p.base_models or p.labels.get(MODEL_LABEL) == base)]


def plan(adapters: list[AdapterView], pods: list[PodView], state: State, now: float,
         settings: Settings = Settings()) -> Plan:
    owned = {a.name for a in adapters}
    by_name = {p.name: p for p in pods}
    placement: dict[str, tuple[str, ...]] = {}
    desired: dict[str, int] = {}
    scheduling: dict[str, Scheduling] = {}
    active: list[AdapterView] = []
    current: dict[str, list[str]] = {}
    allowed: dict[str, list[str]] = {}
    need: dict[str, int] = {}
    held: dict[str, list[str]] = {}
    for p in pods:
        if p.usable:
            state.unready_since.pop(p.name, None)
        elif not p.deleting:
            state.unready_since.setdefault(p.name, now)
    for name in [n for n in state.unready_since if n not in by_name]:
        del state.unready_since[name]
    for a in adapters:
        if a.deleting or is_failed(a, state):
            placement[a.name] = ()
            continue
        if a.spec is None:     # an invalid edit: keep what is loaded, load nothing new
            placement[a.name] = tuple(p for p in a.instances if p in by_name)
            scheduling[a.name] = Scheduling(False, "InvalidSpec", a.spec_error or "invalid spec")
            continue
        ok = eligible(a, pods)
        names = [p.name for p in ok]
        # placed pods in their grace period (restarting engines) keep the adapter and count
        held[a.name] = [p for p in a.instances if p in by_name and not by_name[p].deleting
                        and not by_name[p].usable and a.spec.selector.matches(by_name[p].labels)
                        and now - state.unready_since.get(p, now) < settings.unready_grace_s]
        want = a.spec.replicas if a.spec.replicas is not None else len(ok) + len(held[a.name])
        desired[a.name] = want
        count = min(want - len(held[a.name]), len(ok))
        need[a.name] = count
        have = [p for p in a.instances if p in names]
        have += [p.name for p in ok if p.loaded and a.name in p.loaded and p.name not in have]
        current[a.name] = have[:count]
        allowed[a.name] = names
        if not ok:
            scheduling[a.name] = Scheduling(False, "NoEligiblePods", "no pod matches spec.podSelector"
                                            + (f" and serves baseModel {a.spec.base_model}" if a.spec.base_model else "")
                                            + " while Ready, not being deleted and answering GET /v1/models with "
                                              "LoRA enabled (--max-loras >= 1)")
        elif want > len(ok) + len(held[a.name]):
            scheduling[a.name] = Scheduling(False, "NotEnoughPods",
                                            f"spec.replicas is {want} but only {len(ok)} pods are eligible")
        if count > 0:
            active.append(a)
        else:
            placement[a.name] = ()
    out = Plan(placement, desired, scheduling)
    if active:
        _place(out, active, pods, owned, current, allowed, need, settings, state, now)
    for name, pods_held in held.items():
        if pods_held:
            out.placement[name] = tuple(sorted(set(out.placement.get(name, ())) | set(pods_held)))
    out.actions = _actions(adapters, pods, out.placement, owned, state, now, settings)
    return out


def imbalance(active: list[AdapterView], current: dict[str, list[str]], want: dict[str, int],
              pods: list[str]) -> tuple[float, float]:
    """(peak pod load, the lowest peak any placement could reach) in req/s for the current
    placement, where an adapter adds rate / replicas to each pod that loads it."""
    load = dict.fromkeys(pods, 0.0)
    biggest = 0.0
    for a in active:
        n = max(want[a.name], 1)
        biggest = max(biggest, a.rate / n)
        for p in current[a.name]:
            load[p] = load.get(p, 0.0) + a.rate / n
    total = sum(a.rate for a in active)
    return max(load.values(), default=0.0), max(total / max(len(pods), 1), biggest)


def _place(out: Plan, active: list[AdapterView], pods: list[PodView], owned: set[str],
           current: dict[str, list[str]], allowed: dict[str, list[str]], want: dict[str, int],
           settings: Settings, state: State, now: float) -> None:
    names = {n for a in active for n in allowed[a.name]}
    total = sum(max(a.rate, 0.01) for a in active)
    if all(len(current[a.name]) == want[a.name] for a in active):
        peak, best = imbalance(active, current, want, sorted(names))
        due = state.last_rebalance is None or now - state.last_rebalance >= settings.rebalance_interval_s
        if not (due and peak > settings.rebalance_ratio * best and peak - best >= settings.rebalance_min_rps):
            for a in active:
                out.placement[a.name] = tuple(sorted(current[a.name]))
                out.scheduling.setdefault(a.name, Scheduling(True, "Placed", _on(current[a.name])))
            return
        state.last_rebalance = now
        move_cost = settings.rebalance_move_cost * total / max(len(names), 1)
        out.solver_note = f"rebalance: peak {peak:.2f} req/s vs best possible {best:.2f}; "
    else:
        move_cost = total + 1.0     # repair: fewest moves first, then the lowest peak
    active_names = {a.name for a in active}
    engine_pods = []
    for p in pods:
        if p.name not in names:
            continue
        # slots held by adapters this round does not place: hand-loaded ones (left alone) and
        # owned ones on their way out
        busy = len([n for n in p.loaded or () if n not in owned or n not in active_names])
        engine_pods.append(lp.EnginePod(p.name, max(0, p.slots - busy), p.memory_mib))
    problem_adapters = [lp.Adapter(a.name, a.spec.size_mib if a.spec else 0, max(a.rate, 0.01), want[a.name])
                        for a in active]
    by_pod: dict[str, list[str]] = {}
    for a in active:
        for p in current[a.name]:
            by_pod.setdefault(p, []).append(a.name)
    problem = lp.Problem(engine_pods, problem_adapters, by_pod, time_limit_s=settings.solve_time_s,
                         allowed={a.name: allowed[a.name] for a in active}, move_cost_rps=move_cost)
    result = lp.solve(problem)
    out.solved = True
    if result.feasible:
        chosen = result.placement
        out.solver_note += f"moves={result.moves} max_load={result.max_load} optimal={result.optimal}"
    else:
        chosen = lp.greedy(problem)      # as many replicas as fit
        out.solver_note = f"infeasible: {result.reason}; placed greedily"
    for a in active:
        pods_of = sorted(p for p, names_ in chosen.items() if a.name in names_)
        out.placement[a.name] = tuple(pods_of)
        if len(pods_of) < want[a.name]:
            out.scheduling[a.name] = Scheduling(False, "InsufficientCapacity",
                                                f"placed on {len(pods_of)} of {want[a.name]} pods: {result.reason}")
        else:
            out.scheduling.setdefault(a.name, Scheduling(True, "Placed", _on(pods_of)))


def _on(pods: list[str] | tuple[str, ...]) -> str:
    return "placed on " + ", ".join(sorted(pods)) if pods else "placed nowhere"


def _actions(adapters: list[AdapterView], pods: list[PodView], placement: dict[str, tuple[str, ...]],
             owned: set[str], state: State, now: float, settings: Settings) -> list[Action]:
    views = {a.name: a for a in adapters}
    actions: list[Action] = []

    def due(key: tuple[str, str]) -> bool:
        attempt = state.backoff.get(key)
        return attempt is None or now >= attempt.next_at

    for p in pods:
        if p.loaded is None or not p.ip or p.deleting:
            continue
        url = f"http://{p.ip}:{p.port}"
        loaded = set(p.loaded)
        # unloads first: they free slots (after the drain delay)
        for name in sorted(loaded & owned):
            key = (name, p.name)
            if p.name in placement.get(name, ()):
                state.draining.pop(key, None)
                continue
            since = state.draining.setdefault(key, now)
            if now - since >= settings.drain_s and due(key):
                spec = views[name].spec
                actions.append(Action("unload", name, p.name, url, api_key=spec.api_key if spec else None))
        for key in [k for k in state.draining if k[1] == p.name and k[0] not in loaded]:
            del state.draining[key]
        free = p.slots - len(loaded)
        for name in sorted(placement):
            if p.name not in placement[name] or name in loaded or not p.usable:
                continue
            spec = views[name].spec
            if spec is None or free <= 0 or not due((name, p.name)):
                continue
            free -= 1
            actions.append(Action("load", name, p.name, url, spec.lora_path, spec.api_key))
    return actions


def record(state: State, adapters: list[AdapterView], outcomes: list[Outcome], now: float, rng: random.Random,
           settings: Settings = Settings()) -> None:
    """Fold the round's outcomes into the state: clear or grow backoffs, remember permanent errors."""
    gens = {a.name: a.generation for a in adapters}
    for o in outcomes:
        key = (o.action.adapter, o.action.pod)
        if o.ok:
            state.backoff.pop(key, None)
            if o.action.kind == "unload":
                state.draining.pop(key, None)
            continue
        if o.permanent and o.action.kind == "load":
            state.failed[o.action.adapter] = (gens.get(o.action.adapter, 0), f"pod {o.action.pod}: {o.message}")
            state.backoff.pop(key, None)
            continue
        n = state.backoff[key].failures + 1 if key in state.backoff else 1
        delay = min(settings.backoff_cap_s, settings.backoff_base_s * 2 ** (n - 1))
        delay = delay / 2 + rng.uniform(0, delay / 2)          # "equal jitter"
        state.backoff[key] = Attempt(n, now + delay, o.message)
    for key in [k for k in state.backoff if k[0] not in gens]:
        del state.backoff[key]
    for name in [n for n in state.failed if n not in gens]:
        del state.failed[name]


def serving(a: AdapterView, placement: tuple[str, ...], pods: list[PodView]) -> list[PodView]:
    """Pods the EndpointSlice lists: placed, Ready, and the engine lists the adapter."""
    return [p for p in pods if p.name in placement and p.ready and not p.deleting and p.ip
            and p.loaded is not None and a.name in p.loaded]


def summarize(a: AdapterView, out: Plan, pods: list[PodView], state: State, now: float,
              conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """The adapter's status after the round (pods carry what is loaded after the actions)."""
    placement = out.placement.get(a.name, ())
    ready = len(serving(a, placement, pods))
    want = out.desired.get(a.name, len(a.instances))
    sched = out.scheduling.get(a.name)
    conds = list(conditions)
    if sched is not None:
        conds = set_condition(conds, "Scheduled", sched.ok, sched.reason, sched.message, now)
    failed = is_failed(a, state)
    if a.spec is None:
        phase = "Failed"
        conds = set_condition(conds, "Ready", False, "InvalidSpec", a.spec_error or "invalid spec", now)
    elif failed:
        phase = "Failed"
        conds = set_condition(conds, "Ready", False, "LoadFailed",
                              failed + " (permanent: not retried until the spec changes)", now)
    elif want and ready >= want:
        phase = "Running"
        conds = set_condition(conds, "Ready", True, "Loaded",
                              f"loaded and listed in GET /v1/models on {ready} of {want} pods", now)
    else:
        phase = "Scheduled" if placement else "Pending"
        errors = sorted(f"pod {pod}: {att.error} (attempt {att.failures}, next in {max(0, att.next_at - now):.0f} s)"
                        for (name, pod), att in state.backoff.items() if name == a.name)
        reason = "Retrying" if errors else ("Loading" if placement else "NotScheduled")
        msg = f"loaded on {ready} of {want} pods" + ("; " + "; ".join(errors) if errors else "")
        conds = set_condition(conds, "Ready", False, reason, msg, now)
    return {"phase": phase, "instances": list(placement), "readyReplicas": ready, "desiredReplicas": want,
            "conditions": conds, "observedGeneration": a.generation}
