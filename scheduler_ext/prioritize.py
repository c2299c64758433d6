"""Prioritize: scores 0..10 per node (pure).

Policies:
- binpack: prefer the fullest node that still fits: 10 * (used + need) / allocatable;
- spread: prefer the emptiest: 10 * (free - need) / allocatable;
- cost: for a pod of model M with GPU-mix targets, prefer GPU types whose target is not yet met
  (5..10, by cost-efficiency), then other profiled types (0..4, by cost-efficiency); nodes of an
  unprofiled type score 0. Ties inside a type are broken by binpack.
Nodes that do not fit score 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler_ext.cache import NodeState
from scheduler_ext.gpu import matches
from scheduler_ext.model import MAX_PRIORITY, PodRequest


@dataclass(frozen=True)
class CostView:
    """What the cost policy needs for one model: efficiency and target deficit per GPU type."""

    efficiency: dict[str, float]  # profile gpu type -> requests/s per $ on the model's workload
    deficit: dict[str, int]  # profile gpu type -> target replicas - running replicas


def _fits(pod: PodRequest, state: NodeState) -> bool:
    alloc = state.gpus.allocatable
    used = state.used
    return all(alloc.get(r, 0) - used.get(r, 0) >= n for r, n in pod.requests.items())


def _fill(pod: PodRequest, state: NodeState, after: bool) -> float:
    """Fraction of the node's managed GPUs in use (after placing the pod when `after`)."""
    total = used = 0
    for res, need in pod.requests.items():
        total += state.gpus.allocatable.get(res, 0)
        used += state.used.get(res, 0) + (need if after else 0)
    return used / total if total else 0.0


def score_nodes(pod: PodRequest, names: list[str], nodes: Mapping[str, NodeState], policy: str,
                cost: CostView | None = None) -> list[int]:
    """One score per name, in order."""
    if not pod.requests:
        return [0] * len(names)
    get = nodes.get
    scores: list[int] = []
    if policy == "cost" and cost is not None and cost.efficiency:
        best = max(cost.efficiency.values()) or 1.0
        type_score: dict[str, int] = {}
        for name in names:
            state = get(name)
            if state is None or not _fits(pod, state):
                scores.append(0)
                continue
            gpu_type = state.gpus.gpu_type
            score = type_score.get(gpu_type)
            if score is None:
                score = 0
                for ptype, eff in cost.efficiency.items():
                    if matches(ptype, state.gpus.names):
                        rel = eff / best
                        score = 5 + round(5 * rel) if cost.deficit.get(ptype, 0) > 0 else round(4 * rel)
                        break
                type_score[gpu_type] = score
            scores.append(score)
        return scores
    spread = policy == "spread"
    if len(pod.requests) == 1:
        ((res, need),) = pod.requests.items()
        for name in names:
            state = get(name)
            if state is None:
                scores.append(0)
                continue
            total = state.gpus.allocatable.get(res, 0)
            free = total - state.used.get(res, 0)
            if total <= 0 or free < need:
                scores.append(0)
            elif spread:
                scores.append((MAX_PRIORITY * (free - need) + total // 2) // total)
            else:
                scores.append((MAX_PRIORITY * (total - free + need) + total // 2) // total)
        return scores
    for name in names:
        state = get(name)
        if state is None or not _fits(pod, state):
            scores.append(0)
        elif spread:
            scores.append(round(MAX_PRIORITY * (1.0 - _fill(pod, state, True))))
        else:
            scores.append(round(MAX_PRIORITY * _fill(pod, state, True)))
    return scores


def encode_scores(names: list[str], scores: list[int], nodes: Mapping[str, NodeState]) -> bytes:
    """The HostPriorityList JSON, from each node's precomputed '{"Host":"n","Score":' prefix."""
    parts = []
    get = nodes.get
    for name, score in zip(names, scores, strict=True):
        state = get(name)
        prefix = state.host_prefix if state is not None else '{"Host":' + json.dumps(name) + ',"Score":'
        parts.append(f"{prefix}{score}}}")
    return ("[" + ",".join(parts) + "]").encode()
