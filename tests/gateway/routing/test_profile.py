"""The combination math: weights, clamping, tie-breaking, spec parsing."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from gateway.routing.api import Category
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest
from gateway.routing.profile import Profile, WeightedScorer, parse_spec


@dataclass
class Fixed:
    values: dict[str, float]
    name: str = "fixed"
    category: Category = "balance"
    needs_prompt: bool = False

    def score(self, ctx, request, endpoints):  # type: ignore[no-untyped-def]
        return {e.id: self.values[e.id] for e in endpoints}


EPS = [EndpointState("a"), EndpointState("b"), EndpointState("c")]
REQ = RoutingRequest(model="m")


def pick(profile: Profile, seed: int = 0) -> str:
    chosen = profile.pick(RoutingContext(now=0.0, rng=random.Random(seed)), REQ, EPS)
    assert chosen is not None
    return chosen.id


def test_weighted_sum_decides():
    affinity = Fixed({"a": 1.0, "b": 0.0, "c": 0.5})
    balance = Fixed({"a": 0.0, "b": 1.0, "c": 0.5})
    # 3:2 -> a = 0.6, b = 0.4, c = 0.5
    assert pick(Profile("x", (WeightedScorer(affinity, 3), WeightedScorer(balance, 2)))) == "a"
    # 1:4 -> a = 0.2, b = 0.8
    assert pick(Profile("x", (WeightedScorer(affinity, 1), WeightedScorer(balance, 4)))) == "b"


def test_out_of_range_and_nan_scores_are_clamped():
    wild = Fixed({"a": 7.0, "b": float("nan"), "c": -3.0})
    other = Fixed({"a": 0.0, "b": 0.9, "c": 1.0})
    # a: clamp 1 -> 0.5 ; b: NaN -> 0 + 0.45 ; c: 0 + 0.5  => tie a/c, never b
    seen = {pick(Profile("x", (WeightedScorer(wild, 1), WeightedScorer(other, 1))), seed) for seed in range(40)}
    assert seen == {"a", "c"}


def test_ties_are_broken_uniformly():
    flat = Fixed({"a": 1.0, "b": 1.0, "c": 1.0})
    counts = Counter(pick(Profile("x", (WeightedScorer(flat, 1),)), seed) for seed in range(3000))
    assert set(counts) == {"a", "b", "c"}
    assert min(counts.values()) > 800


def test_parse_spec():
    assert parse_spec("prefix-cache-aware:3,least-request:2") == [("prefix-cache-aware", 3.0), ("least-request", 2.0)]
    assert parse_spec(" random ") == [("random", 1.0)]


@pytest.mark.parametrize("spec,message", [
    ("a:x", "not a number"), ("a:0", "must be in"), ("a,,b", "empty entry"), ("a,a", "twice"), ("a:-1", "must be in"),
])
def test_parse_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)
