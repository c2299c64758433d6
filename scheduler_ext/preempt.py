"""Preempt: per candidate node, the fewest and lowest-priority GPU victims that make the pod fit (pure).

kube-scheduler proposes victims per node; the extender answers with its own choice by UID
(MetaVictims). Victims that hold no managed resource (chosen by kube-scheduler for CPU or memory)
are kept; the GPU victims are replaced by the smallest set of lower-priority GPU pods on the
node whose release makes the pod's GPUs fit. A node where even evicting every lower-priority
GPU pod is not enough is dropped from the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

from scheduler_ext.cache import BoundPod, NodeState
from scheduler_ext.model import PodRequest

MAX_EXACT_CANDIDATES = 16


@dataclass(frozen=True)
class Candidate:
    uid: str
    priority: int
    requests: dict[str, int]


def _deficit(pod: PodRequest, state: NodeState) -> dict[str, int]:
    return {r: n - state.free(r) for r, n in pod.requests.items() if state.free(r) < n}


def _covers(victims: Iterable[Candidate], deficit: dict[str, int]) -> bool:
    freed: dict[str, int] = {}
    for v in victims:
        for r, n in v.requests.items():
            freed[r] = freed.get(r, 0) + n
    return all(freed.get(r, 0) >= n for r, n in deficit.items())


def choose_victims(pod: PodRequest, state: NodeState, candidates: list[Candidate]) -> list[Candidate] | None:
    """Fewest victims first, then the lowest highest-priority, then the lowest priority sum.

    None when the pod cannot fit on the node even after evicting every candidate.
    """
    deficit = _deficit(pod, state)
    if not deficit:
        return []
    useful = sorted((c for c in candidates if c.priority < pod.priority and any(r in deficit for r in c.requests)),
                    key=lambda c: (c.priority, -sum(c.requests.values()), c.uid))
    if not _covers(useful, deficit):
        return None
    if len(useful) > MAX_EXACT_CANDIDATES:
        chosen: list[Candidate] = []
        for c in useful:  # greedy: lowest priority first until it fits, then drop the unneeded
            chosen.append(c)
            if _covers(chosen, deficit):
                break
        for c in sorted(chosen, key=lambda c: -c.priority):
            rest = [x for x in chosen if x is not c]
            if _covers(rest, deficit):
                chosen = rest
        return chosen
    for k in range(1, len(useful) + 1):
        fits = [combo for combo in combinations(useful, k) if _covers(combo, deficit)]
        if fits:
            best = min(fits, key=lambda combo: (max(c.priority for c in combo), sum(c.priority for c in combo),
                                                [c.uid for c in combo]))
            return list(best)
    return None


def candidates_from_cache(pods: list[BoundPod]) -> list[Candidate]:
    return [Candidate(p.uid, p.priority, p.requests) for p in pods]


def preempt(pod: PodRequest, proposed: dict[str, list[str]], nodes: dict[str, NodeState],
            pods_on: dict[str, list[Candidate]], managed_uids: set[str]) -> dict[str, list[str]]:
    """node -> victim UIDs. `proposed` is kube-scheduler's proposal; `pods_on` the GPU pods per node;
    `managed_uids` the uids known to hold managed resources (other proposed victims are kept)."""
    out: dict[str, list[str]] = {}
    for node, uids in proposed.items():
        state = nodes.get(node)
        if state is None:
            continue
        keep = [u for u in uids if u not in managed_uids]
        victims = choose_victims(pod, state, pods_on.get(node, []))
        if victims is None:
            continue
        chosen = keep + [v.uid for v in victims]
        if chosen:
            out[node] = chosen
    return out
