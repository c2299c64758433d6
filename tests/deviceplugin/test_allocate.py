"""Preferred allocation (pure): NVLink first, then PCIe distance; must_include and size honoured."""

from __future__ import annotations

import itertools

import pytest

from deviceplugin.allocate import Topology, preferred


def pairs_topology(n: int, links: int = 4) -> Topology:
    """GPUs g0..g{n-1}: NVLink pairs (0-1, 2-3, ...); two GPUs per PCIe switch, half per NUMA node."""
    ids = [f"g{i}" for i in range(n)]
    nvlinks = {frozenset((ids[i], ids[i ^ 1])): links for i in range(0, n - 1, 2)}
    pcie = {}
    for a, b in itertools.combinations(range(n), 2):
        if a // 2 == b // 2:
            level = "single"
        elif (a < n // 2) == (b < n // 2):
            level = "node"
        else:
            level = "system"
        pcie[frozenset((ids[a], ids[b]))] = level
    return Topology(nvlinks, pcie, {d: i for i, d in enumerate(ids)})


def ids(*numbers: int) -> list[str]:
    return [f"g{i}" for i in numbers]


def test_two_gpus_come_from_one_nvlink_pair():
    topo = pairs_topology(8)
    assert sorted(preferred(ids(1, 2, 3, 5, 6), [], 2, topo)) == ids(2, 3)


def test_must_include_pulls_its_nvlink_peer():
    topo = pairs_topology(8)
    assert sorted(preferred(ids(0, 1, 4, 5, 6), ids(5), 2, topo)) == ids(4, 5)
    assert preferred(ids(0, 1, 4, 5), ids(5), 2, topo)[0] == "g5"


def test_without_nvlink_pcie_distance_decides():
    # g1's pair partner is gone: the nearest other GPU shares the NUMA node (g2/g3), not across CPUs.
    topo = pairs_topology(8)
    chosen = preferred(ids(1, 2, 4, 6), ids(1), 2, topo)
    assert sorted(chosen) == ids(1, 2)


def test_four_gpus_are_two_whole_pairs_on_one_numa_node():
    topo = pairs_topology(8)
    assert sorted(preferred(ids(*range(8)), [], 4, topo)) == ids(0, 1, 2, 3)
    assert sorted(preferred(ids(0, 2, 3, 4, 5, 6, 7), [], 4, topo)) == ids(4, 5, 6, 7)


@pytest.mark.parametrize(("available", "must", "size"), [
    (ids(0), [], 2),          # too few available
    (ids(0, 1, 2), [], 0),    # nothing asked
    (ids(0, 1, 2), ids(0, 1, 2), 2),  # more required than size
])
def test_impossible_requests_return_nothing(available, must, size):
    assert preferred(available, must, size, pairs_topology(4)) == []


def test_large_nodes_use_the_greedy_search_and_still_keep_pairs():
    topo = pairs_topology(64)
    chosen = preferred(ids(*range(64)), [], 8, topo)
    assert len(chosen) == 8 == len(set(chosen))
    numbers = sorted(int(c[1:]) for c in chosen)
    assert all(n ^ 1 in numbers for n in numbers), numbers


def test_index_policy_takes_lowest_indices_after_required():
    topo = pairs_topology(8)
    assert preferred(ids(7, 3, 5, 1), ids(5), 3, topo, policy="index") == ids(5, 1, 3)


def test_answers_are_deterministic():
    topo = Topology(order={f"g{i}": i for i in range(6)})
    assert preferred(ids(5, 4, 3, 2, 1, 0), [], 3, topo) == ids(0, 1, 2)
