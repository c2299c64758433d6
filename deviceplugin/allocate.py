"""Preferred allocation: which `size` devices to hand out from the available ones (pure).

The topology policy mirrors NVIDIA's go-gpuallocator best-effort idea with a simpler search:
a set's score is the sum of its pair scores, and a pair scores 100 per NVLink between the two
GPUs plus a PCIe closeness score (same switch 50, several switches 40, same host bridge 30,
same NUMA node 20, across CPUs 10). NVLink therefore always dominates, and PCIe distance breaks
ties. Small problems are searched exhaustively; large ones greedily (best seed pair, then the
device adding the most score). Ties go to the lower device index, so answers are deterministic.

Policies are plain functions in `POLICIES`, keyed by name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

NVLINK_SCORE = 100
"""Score per NVLink between two GPUs."""
PCIE_SCORES = {"internal": 60, "single": 50, "multiple": 40, "hostbridge": 30, "node": 20, "system": 10}
"""PCIe closeness by the common ancestor of two GPUs (NVML topology levels)."""
EXHAUSTIVE_LIMIT = 20_000
"""Candidate sets searched exhaustively before falling back to greedy."""


@dataclass(frozen=True)
class Topology:
    """Pair links between devices, by id. Missing pairs score 0 (unknown topology)."""

    nvlinks: Mapping[frozenset[str], int] = field(default_factory=dict)
    pcie: Mapping[frozenset[str], str] = field(default_factory=dict)
    order: Mapping[str, int] = field(default_factory=dict)
    """Device index by id, for deterministic tie-breaking."""

    def pair_score(self, a: str, b: str) -> int:
        key = frozenset((a, b))
        return NVLINK_SCORE * self.nvlinks.get(key, 0) + PCIE_SCORES.get(self.pcie.get(key, ""), 0)

    def set_score(self, ids: Sequence[str]) -> int:
        return sum(self.pair_score(a, b) for a, b in itertools.combinations(ids, 2))

    def rank(self, device_id: str) -> tuple[int, str]:
        return (self.order.get(device_id, 1 << 30), device_id)


Policy = Callable[[Sequence[str], Sequence[str], int, Topology], list[str]]


def preferred(available: Sequence[str], must_include: Sequence[str], size: int, topology: Topology,
              policy: str = "topology") -> list[str]:
    """Pick `size` ids from `available`, always including `must_include`.

    Returns [] when the request cannot be met (size <= 0, too few available, or more required
    than size) — kubelet then falls back to its own choice.
    """
    available = _dedupe(available)
    must = _dedupe(must_include)
    if size <= 0 or len(available) < size or len(must) > size:
        return []
    pool = list(dict.fromkeys([*must, *available]))
    if len(pool) < size:
        return []
    return POLICIES[policy](pool, must, size, topology)


def by_index(pool: Sequence[str], must: Sequence[str], size: int, topology: Topology) -> list[str]:
    """Required devices, then the lowest-index others (no topology)."""
    rest = sorted((i for i in pool if i not in must), key=topology.rank)
    return [*must, *rest[: size - len(must)]]


def by_topology(pool: Sequence[str], must: Sequence[str], size: int, topology: Topology) -> list[str]:
    """Maximise the set score (NVLinks first, then PCIe closeness)."""
    rest = sorted((i for i in pool if i not in must), key=topology.rank)
    need = size - len(must)
    if need == 0:
        return list(must)
    if math.comb(len(rest), need) <= EXHAUSTIVE_LIMIT:
        best: list[str] | None = None
        best_key: tuple[int, list[tuple[int, str]]] | None = None
        for combo in itertools.combinations(rest, need):
            chosen = [*must, *combo]
            key = (-topology.set_score(chosen), [topology.rank(i) for i in combo])
            if best_key is None or key < best_key:
                best, best_key = chosen, key
        assert best is not None
        return best
    return _greedy(rest, list(must), need, topology)


def _greedy(rest: list[str], chosen: list[str], need: int, topology: Topology) -> list[str]:
    remaining = list(rest)
    if not chosen and need >= 2:
        a, b = max(itertools.combinations(remaining, 2),
                   key=lambda p: (topology.pair_score(*p), -topology.rank(p[0])[0], -topology.rank(p[1])[0]))
        chosen, need = [a, b], need - 2
        remaining = [i for i in remaining if i not in (a, b)]
    while need > 0:
        pick = max(remaining, key=lambda i: (sum(topology.pair_score(i, c) for c in chosen), -topology.rank(i)[0]))
        chosen.append(pick)
        remaining.remove(pick)
        need -= 1
    return chosen


def _dedupe(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


POLICIES: dict[str, Policy] = {"topology": by_topology, "index": by_index}
