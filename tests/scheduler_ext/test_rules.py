"""Pure rules: victim choice vs brute force, SLO and quantity parsing, GPU type matching."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_ext.cache import NodeCache
from scheduler_ext.gpu import matches, type_names
from scheduler_ext.model import DEFAULT_RESOURCES, PodRequest, parse_quantity, parse_slo
from scheduler_ext.preempt import Candidate, choose_victims
from tests.scheduler_ext.conftest import node

RES = "nvidia.com/gpu"


def state(total: int, used: int):
    cache = NodeCache(frozenset(DEFAULT_RESOURCES))
    cache.upsert_node(node("n", total))
    st_ = cache.nodes["n"]
    st_.used[RES] = used
    return st_


def preemptor(gpus: int, priority: int) -> PodRequest:
    return PodRequest("u", "p", "default", priority, {RES: gpus}, {}, {})


@settings(max_examples=60, deadline=None)
@given(victims=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 20)), min_size=0, max_size=6),
       need=st.integers(1, 8), prio=st.integers(0, 20))
def test_victims_are_the_fewest_then_lowest_priority(victims, need, prio):
    used = sum(g for g, _ in victims)
    total = max(8, used)
    cands = [Candidate(f"v{i}", p, {RES: g}) for i, (g, p) in enumerate(victims)]
    chosen = choose_victims(preemptor(need, prio), state(total, used), cands)
    free = total - used
    eligible = [c for c in cands if c.priority < prio]
    best = None
    for k in range(len(eligible) + 1):
        for combo in itertools.combinations(eligible, k):
            if free + sum(c.requests[RES] for c in combo) >= need:
                key = (k, max((c.priority for c in combo), default=-1), sum(c.priority for c in combo))
                best = key if best is None or key < best else best
        if best is not None:
            break
    if best is None:
        assert chosen is None
    else:
        assert chosen is not None
        assert free + sum(c.requests[RES] for c in chosen) >= need
        assert all(c.priority < prio for c in chosen)
        got = (len(chosen), max((c.priority for c in chosen), default=-1), sum(c.priority for c in chosen))
        assert got == best


def test_slo_parsing():
    assert parse_slo("ttft_p99=2s, tpot_p99=100ms").targets == {"ttft_p99": 2.0, "tpot_p99": 0.1}
    assert parse_slo("e2e_mean=1.5m").targets == {"e2e_mean": 90.0}
    for bad, message in (("ttft=2s", "bad entry 'ttft=2s'"), ("ttft_p99=2", "bad duration '2'"),
                         ("latency_p99=1s", "bad entry"), ("", "empty")):
        with pytest.raises(ValueError, match=message):
            parse_slo(bad)


def test_quantities():
    assert parse_quantity("8") == 8 and parse_quantity(4) == 4 and parse_quantity("2k") == 2000
    with pytest.raises(ValueError, match="bad quantity 'two'"):
        parse_quantity("two")


def test_gpu_type_names():
    names = type_names("NVIDIA-A100-SXM4-80GB", "gpu")
    assert matches("A100", names) and matches("nvidia-a100-sxm4-80gb", names)
    assert matches("simulator-llama2-7b-a100", names)  # AIBrix profile names
    assert not matches("A10", names) and not matches("H100", names)
    assert matches("Ascend910", type_names("", "Ascend910"))


def test_best_of_keeps_the_highest_scores_in_order_with_ties_in_input_order():
    from scheduler_ext.filter import best_of

    names = ["a", "b", "c", "d"]
    assert best_of(names, [3, 9, 9, 1], 2) == ["b", "c"]
    assert best_of(names, [3, 9, 9, 1], 1) == ["b"]
    assert best_of(names, [3, 9, 9, 1], 0) == names
    assert best_of(names, [3, 9, 9, 1], 4) == names
