"""Filter: which nodes can take the pod's GPUs now, and why the others cannot (pure).

- never fits (FailedAndUnresolvableNodes, preemption will not help): the node has no such
  resource, fewer allocatable GPUs in total than asked, or a GPU type the pod excludes;
- does not fit now (FailedNodes): not enough free GPUs; preemption may help.
A pod that asks for no managed resource passes through unchanged.

Each reason a person reads in `kubectl describe pod` is written by one function below (reason_*),
which the per-node path here, the vectorised path (fastpath.py) and /bind all use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from scheduler_ext.cache import NodeState
from scheduler_ext.gpu import matches
from scheduler_ext.model import FilterResult, PodRequest

REASON_NOT_CACHED = "node is not in the extender's cache yet"  # FailedNodes: the informer may not have it yet


def reason_short(need: int, resource: str, free: int) -> str:
    """FailedNodes: not enough free now (preemption may help)."""
    return f"needs {need} {resource}, {free} free"


def reason_no_resource(resource: str) -> str:
    return f"node has no {resource}"


def reason_too_few_total(need: int, resource: str, total: int, unhealthy: int) -> str:
    extra = f" ({unhealthy} unhealthy)" if unhealthy else ""
    return f"needs {need} {resource}, node has {total} in total{extra}"


def reason_wrong_type(gpu_type: str, allowed: frozenset[str] | None) -> str:
    return (f"GPU type {gpu_type or 'unknown'} is not among the pod's allowed types "
            f"({', '.join(sorted(allowed or ()))})")


def short_of(requests: Mapping[str, int], state: NodeState) -> list[str]:
    """One reason_short per resource the node has too few free of, now."""
    return [reason_short(need, res, state.free(res)) for res, need in requests.items()
            if state.free(res) < need]


def allowed_type(allowed: frozenset[str] | None, state: NodeState) -> bool:
    if allowed is None:
        return True
    return any(matches(t, state.gpus.names) for t in allowed)


def never_fits(pod: PodRequest, state: NodeState, allowed: frozenset[str] | None) -> str | None:
    """The reason the node can never take this pod, or None."""
    alloc = state.gpus.allocatable
    for res, need in pod.requests.items():
        total = alloc.get(res)
        if total is None:
            return reason_no_resource(res)
        if total < need:
            return reason_too_few_total(need, res, total, state.gpus.unhealthy)
    if not allowed_type(allowed, state):
        return reason_wrong_type(state.gpus.gpu_type, allowed)
    return None


def filter_nodes(pod: PodRequest, names: list[str], nodes: Mapping[str, NodeState],
                 allowed: frozenset[str] | None) -> FilterResult:
    if not pod.requests:
        return FilterResult(node_names=list(names))
    result = FilterResult()
    passing = result.node_names
    failed = result.failed
    unresolvable = result.unresolvable
    get = nodes.get
    if len(pod.requests) == 1 and allowed is None:
        # the common case, kept tight: one resource, any GPU type
        ((res, need),) = pod.requests.items()
        for name in names:
            state = get(name)
            if state is None:
                failed[name] = REASON_NOT_CACHED
                continue
            total = state.gpus.allocatable.get(res)
            if total is not None and total >= need:
                free = total - state.used.get(res, 0)
                if free >= need:
                    passing.append(name)
                else:
                    failed[name] = reason_short(need, res, free)
            else:
                unresolvable[name] = never_fits(pod, state, None) or "no fit"
        return result
    for name in names:
        state = get(name)
        if state is None:
            failed[name] = REASON_NOT_CACHED
            continue
        reason = never_fits(pod, state, allowed)
        if reason is not None:
            unresolvable[name] = reason
            continue
        short = short_of(pod.requests, state)
        if short:
            failed[name] = "; ".join(short)
        else:
            passing.append(name)
    return result


def best_of(names: list[str], scores: Sequence[int], keep: int) -> list[str]:
    """The `keep` highest-scoring names, best first, ties in their given order (kube-scheduler's);
    every name when keep is 0 or covers them all."""
    if keep <= 0 or len(names) <= keep:
        return names
    order = sorted(range(len(names)), key=lambda i: -scores[i])
    return [names[i] for i in order[:keep]]
