"""prefix-cache-aware: prefix stickiness, cost model, match threshold, imbalance guard, ageing."""

from __future__ import annotations

import random

import pytest

from gateway.routing.model import EndpointMetrics, EndpointState, RoutingContext, RoutingRequest
from gateway.routing.prefix_cache import PrefixCacheScorer
from gateway.routing.prefix_index import PrefixIndex
from gateway.routing.profile import Profile, WeightedScorer

SHARED = "You are a helpful assistant. " * 40          # ~400 tokens = 25 blocks of 16


def ep(eid: str, in_flight: int = 0, waiting: float = 0) -> EndpointState:
    return EndpointState(eid, frozenset({"m"}), EndpointMetrics(waiting=waiting), in_flight)


def route(profile: Profile, prompt: str, eps: list[EndpointState], now: float = 100.0, seed: int = 0) -> str:
    ctx = RoutingContext(now=now, rng=random.Random(seed))
    chosen = profile.pick(ctx, RoutingRequest(model="m", prompt=prompt, request_id=str(seed)), eps)
    assert chosen is not None
    return chosen.id


@pytest.mark.parametrize("mode", ["cost", "threshold"])
def test_same_prefix_goes_back_to_the_same_endpoint(mode: str):
    prof = Profile("p", (WeightedScorer(PrefixCacheScorer(mode=mode), 1),))
    eps = [ep("a"), ep("b"), ep("c"), ep("d")]
    first = route(prof, SHARED + "question one", eps, seed=1)
    for seed in range(2, 12):
        assert route(prof, SHARED + f"question {seed}", eps, seed=seed) == first


@pytest.mark.parametrize("mode", ["cost", "threshold"])
def test_equal_match_goes_to_the_less_loaded_endpoint(mode: str):
    scorer = PrefixCacheScorer(mode=mode)
    hashes = scorer.hashes(SHARED)
    scorer.index.insert("a", "m", hashes, 100.0)
    scorer.index.insert("b", "m", hashes, 100.0)
    prof = Profile("p", (WeightedScorer(scorer, 1),))
    assert route(prof, SHARED + "x", [ep("a", 3), ep("b", 1), ep("c", 0)]) == "b"


def test_below_match_threshold_falls_back_to_least_load():
    scorer = PrefixCacheScorer(mode="threshold", match_threshold=0.9)
    # 'a' holds the first half of the prompt only -> ratio ~0.5 < 0.9
    scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)
    prof = Profile("p", (WeightedScorer(scorer, 1),))
    assert route(prof, SHARED + SHARED, [ep("a", 2), ep("b", 0)]) == "b"


def test_load_imbalance_guard_overrides_the_prefix_match():
    def fresh() -> Profile:
        scorer = PrefixCacheScorer(mode="threshold", balance_abs_threshold=8, balance_rel_threshold=1.5)
        scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)
        return Profile("p", (WeightedScorer(scorer, 1),))

    # max-min = 9 > 8 and 10 > 1.5*1 -> imbalanced: least load wins although 'a' holds the prefix
    assert route(fresh(), SHARED, [ep("a", 10), ep("b", 1)]) == "b"
    # max-min = 8, not > 8: the prefix wins
    assert route(fresh(), SHARED, [ep("a", 9), ep("b", 1)]) == "a"
    # relative guard: 40 vs 30 differs by 10 > 8 but 40 < 1.5*30 -> balanced enough, prefix wins
    assert route(fresh(), SHARED, [ep("a", 40), ep("b", 30)]) == "a"


def test_waiting_queue_counts_as_load():
    scorer = PrefixCacheScorer(mode="threshold", balance_abs_threshold=4)
    scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)
    prof = Profile("p", (WeightedScorer(scorer, 1),))
    assert route(prof, SHARED, [ep("a", 0, waiting=20), ep("b", 0)]) == "b"


def test_entries_age_out():
    idx = PrefixIndex(ttl_s=60, default_capacity=1000)
    idx.insert("a", "m", [1, 2, 3], now=0.0)
    assert idx.match("a", "m", [1, 2, 3, 4], now=59.0) == 3
    assert idx.match("a", "m", [1, 2, 3, 4], now=61.0) == 0


def test_capacity_evicts_least_recent_blocks_and_models_are_separate():
    idx = PrefixIndex(ttl_s=600, default_capacity=4)
    idx.insert("a", "m", [1, 2, 3], now=0.0)
    idx.insert("a", "m", [10, 11, 12], now=1.0)    # pushes out 1 and 2
    assert idx.size("a", "m") == 4
    assert idx.match("a", "m", [1, 2, 3], now=2.0) == 0
    assert idx.match("a", "m", [10, 11, 12], now=2.0) == 3
    assert idx.match("a", "other-model", [10], now=2.0) == 0


def test_prefix_and_least_request_combination_spreads_unrelated_prompts():
    from gateway.routing.simple import LeastRequestScorer

    prof = Profile("p", (WeightedScorer(PrefixCacheScorer(), 3), WeightedScorer(LeastRequestScorer(), 2)))
    eps = [ep("a", 0), ep("b", 0)]
    chosen = route(prof, SHARED + "x", eps)
    # same prefix, but the holder is now much busier: 3*0.9+... vs 2*1 -> weighs both
    busy = [ep(chosen, 5), ep("b" if chosen == "a" else "a", 0)]
    assert route(prof, SHARED + "y", busy) == chosen   # prefix (0.6*~1) beats load (0.4)


def cost_profile(**kw: object) -> tuple[PrefixCacheScorer, Profile]:
    scorer = PrefixCacheScorer(mode="cost", **kw)  # type: ignore[arg-type]
    return scorer, Profile("p", (WeightedScorer(scorer, 1),))


def test_cost_mode_sends_a_prefix_to_its_holder_when_nothing_is_queued():
    scorer, prof = cost_profile()
    scorer.index.insert("b", "m", scorer.hashes(SHARED), 100.0)
    assert route(prof, SHARED + "tail", [ep("a"), ep("b"), ep("c")]) == "b"


def test_cost_mode_leaves_the_holder_when_its_queued_prefill_outweighs_the_cache_hit():
    scorer, prof = cost_profile(request_overhead_tokens=0, uncached_weight=1.0)
    long_prompt = SHARED * 3                                  # ~1200 tokens
    scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)  # 'a' holds ~400 of them
    eps = [ep("a"), ep("b")]
    # 'a' already has ~1200 uncached prompt tokens queued from this gateway (two unrelated prompts)
    for rid in ("q1", "q2"):
        other = f"unrelated {rid} words here " * 75
        ctx = RoutingContext(now=100.0, rng=random.Random(0))
        scorer.score(ctx, RoutingRequest(model="m", prompt=other, request_id=rid), eps)
        scorer.routed(ctx, RoutingRequest(model="m", prompt=other, request_id=rid), eps[0])
    assert scorer.outstanding_tokens("a") > 1000
    # saving ~400 tokens on 'a' is not worth waiting behind its queue: 'b' wins
    assert route(prof, long_prompt, [ep("a", 2), ep("b", 0)], seed=3) == "b"
    # once those responses ended, the prefix holder wins again
    for rid in ("q1", "q2"):
        prof.released(RoutingRequest(model="m", request_id=rid), "a")
    assert scorer.outstanding_tokens("a") == 0
    assert route(prof, long_prompt, [ep("a"), ep("b")], seed=4) == "a"


def test_cost_mode_counts_engine_reported_requests_from_other_gateways():
    scorer, prof = cost_profile(request_overhead_tokens=128)
    scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)
    busy = EndpointState("a", frozenset({"m"}), EndpointMetrics(running=10, waiting=10), 0)
    # 20 requests x 128 tokens of overhead outweigh a ~400-token cache hit
    assert route(prof, SHARED, [busy, ep("b")]) == "b"
    # 1 request does not
    light = EndpointState("a", frozenset({"m"}), EndpointMetrics(running=1), 0)
    assert route(prof, SHARED, [light, ep("b")]) == "a"


def test_bad_mode_is_rejected_with_the_type_name():
    from gateway.routing.prefix_cache import from_params

    with pytest.raises(ValueError, match="prefix-cache-aware: mode"):
        from_params("x", {"mode": "fast"})
    assert from_params("x", {"mode": "cost", "request_overhead_tokens": 64}).mode == "cost"


def test_forgetting_removed_endpoints_drops_their_index_and_queued_prefill():
    scorer, _ = cost_profile()
    scorer.index.insert("a", "m", scorer.hashes(SHARED), 100.0)
    scorer.index.insert("b", "m", scorer.hashes(SHARED), 100.0)
    ctx = RoutingContext(now=100.0, rng=random.Random(0))
    request = RoutingRequest(model="m", prompt="unrelated words " * 50, request_id="q")
    scorer.score(ctx, request, [ep("a"), ep("b")])
    scorer.routed(ctx, request, ep("a"))
    assert scorer.outstanding_tokens("a") > 0
    scorer.forget_endpoints(["b"])  # discovery no longer has 'a'
    assert scorer.index.size("a", "m") == 0 and scorer.outstanding_tokens("a") == 0
    assert scorer.index.size("b", "m") > 0
