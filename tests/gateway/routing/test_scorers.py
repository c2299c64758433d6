"""Each load/metric scorer picks what it should under hand-built engine states."""

from __future__ import annotations

import random

import pytest

from gateway.routing import least_latency, lora_affinity, power_of_two, session_affinity, simple
from gateway.routing.api import Scorer
from gateway.routing.model import EndpointMetrics, EndpointState, RoutingContext, RoutingRequest
from gateway.routing.registry import register_builtin

# typed assignments stand in for Go's "implements Scorer" assertion
_checks: list[Scorer] = [simple.RandomScorer(), simple.LeastRequestScorer(), simple.LeastKvCacheScorer(),
                         simple.LeastGpuCacheScorer(), simple.ThroughputScorer(),
                         least_latency.LeastLatencyScorer(), power_of_two.PowerOfTwoScorer(),
                         session_affinity.SessionAffinityScorer(), lora_affinity.LoraAffinityScorer()]


def ep(eid: str, in_flight: int = 0, **metrics: object) -> EndpointState:
    return EndpointState(eid, frozenset({"m"}), EndpointMetrics(**metrics), in_flight)  # type: ignore[arg-type]


def ctx(seed: int = 0) -> RoutingContext:
    return RoutingContext(now=1000.0, rng=random.Random(seed))


REQ = RoutingRequest(model="m")


def test_every_builtin_type_builds_and_is_a_scorer():
    reg = register_builtin()
    for t in reg.types():
        assert isinstance(reg.build(t, t, None), Scorer)


def test_least_request_scores_fewest_in_flight_highest():
    scores = simple.LeastRequestScorer().score(ctx(), REQ, [ep("a", 4), ep("b", 0), ep("c", 2)])
    assert scores == pytest.approx({"a": 0.0, "b": 1.0, "c": 0.5})


def test_least_request_can_count_the_engine_queue():
    s = simple.LeastRequestScorer(include_waiting=True)
    scores = s.score(ctx(), REQ, [ep("a", 1, waiting=5), ep("b", 3, waiting=0)])
    assert scores["b"] == 1.0 and scores["a"] == 0.0


def test_all_equal_loads_score_one_everywhere():
    assert simple.LeastRequestScorer().score(ctx(), REQ, [ep("a", 2), ep("b", 2)]) == {"a": 1.0, "b": 1.0}


def test_least_kv_cache_adds_cpu_cache():
    scores = simple.LeastKvCacheScorer().score(
        ctx(), REQ, [ep("a", kv_cache_usage=0.2, cpu_cache_usage=0.5), ep("b", kv_cache_usage=0.4)])
    assert scores == pytest.approx({"a": 0.0, "b": 1.0})   # 0.7 vs 0.4


def test_least_gpu_cache_reads_gpu_usage_and_falls_back_to_kv_usage():
    scores = simple.LeastGpuCacheScorer().score(
        ctx(), REQ, [ep("a", gpu_cache_usage=0.9), ep("b", kv_cache_usage=0.1), ep("c", gpu_cache_usage=0.5)])
    assert max(scores, key=scores.get) == "b"   # type: ignore[arg-type]
    assert scores["c"] == pytest.approx(0.5)


def test_throughput_weights_prompt_tokens_twice():
    # a: 2*100 + 50 = 250 tok/s, b: 2*10 + 200 = 220 tok/s -> b is less busy
    scores = simple.ThroughputScorer().score(
        ctx(), REQ, [ep("a", prompt_tokens_per_s=100, generation_tokens_per_s=50),
                     ep("b", prompt_tokens_per_s=10, generation_tokens_per_s=200)])
    assert scores == pytest.approx({"a": 0.0, "b": 1.0})


def test_least_latency_uses_queue_prefill_and_decode_means():
    fast = ep("fast", queue_time_sum=0.1, queue_time_count=10, prefill_time_sum=1, prefill_time_count=10,
              decode_time_sum=10, decode_time_count=10, prompt_tokens=1000, generation_tokens=1000,
              requests_finished=10)
    slow = ep("slow", queue_time_sum=20, queue_time_count=10, prefill_time_sum=1, prefill_time_count=10,
              decode_time_sum=10, decode_time_count=10, prompt_tokens=1000, generation_tokens=1000,
              requests_finished=10)
    s = least_latency.LeastLatencyScorer()
    # guess: 100 prompt, 100 gen tokens; fast = 0.01 + 0.1/100*100 + 1/100*100 = 1.11; slow adds 1.99 s of queue
    assert s.estimate(fast, 100, 100) == pytest.approx(1.11)
    assert s.score(ctx(), REQ, [slow, fast]) == pytest.approx({"slow": 0.0, "fast": 1.0})


def test_power_of_two_prefers_the_less_loaded_of_its_two_samples():
    eps = [ep("a", 5), ep("b", 1)]
    for seed in range(5):
        scores = power_of_two.PowerOfTwoScorer().score(ctx(seed), REQ, eps)
        assert scores["b"] == 1.0 and scores["a"] == 0.5


def test_power_of_two_never_picks_the_busiest_of_three_when_sampled_against_it():
    eps = [ep("busy", 50), ep("x", 1), ep("y", 2)]
    for seed in range(30):
        scores = power_of_two.PowerOfTwoScorer().score(ctx(seed), REQ, eps)
        assert scores["busy"] < 1.0


def test_lora_affinity_levels():
    req = RoutingRequest(model="sql-lora")
    eps = [ep("running", max_lora=2, running_lora_adapters=frozenset({"sql-lora"})),
           ep("free-slot", max_lora=2, running_lora_adapters=frozenset({"x"})),
           ep("waiting", max_lora=1, running_lora_adapters=frozenset({"x"}), waiting_lora_adapters=frozenset({"sql-lora"})),
           ep("full", max_lora=1, running_lora_adapters=frozenset({"x"}))]
    assert lora_affinity.LoraAffinityScorer().score(ctx(), req, eps) == {
        "running": 1.0, "free-slot": 0.8, "waiting": 0.6, "full": 0.0}


def test_session_affinity_is_sticky_and_moves_only_when_its_endpoint_goes():
    s = session_affinity.SessionAffinityScorer()
    req = RoutingRequest(model="m", headers={"x-session-id": "user-42"})
    eps = [ep("a"), ep("b"), ep("c")]
    first = max((sc := s.score(ctx(), req, eps)), key=sc.get)  # type: ignore[arg-type]
    s.routed(ctx(), req, next(e for e in eps if e.id == first))
    # a new endpoint appears: the session stays
    grown = [*eps, ep("d"), ep("e")]
    assert s.score(ctx(), req, grown)[first] == 1.0
    # its endpoint disappears: the session moves to one of the others
    rest = [e for e in grown if e.id != first]
    moved = s.score(ctx(), req, rest)
    assert sum(moved.values()) == 1.0 and first not in moved


def test_session_affinity_without_header_is_neutral():
    scores = session_affinity.SessionAffinityScorer().score(ctx(), REQ, [ep("a"), ep("b")])
    assert scores == {"a": 1.0, "b": 1.0}


@pytest.mark.parametrize("type_name,params,message", [
    ("prefix-cache-aware", {"match_threshold": 2}, "match_threshold"),
    ("prefix-cache-aware", {"bogus": 1}, "unknown parameter"),
    ("least-latency", {"default_prompt_tokens": 0}, "must be > 0"),
    ("session-affinity", {"ttl_s": -1}, "ttl_s"),
])
def test_bad_params_name_the_plugin_and_the_problem(type_name, params, message):
    with pytest.raises(ValueError, match=message) as info:
        register_builtin().build(type_name, type_name, params)
    assert type_name in str(info.value)
