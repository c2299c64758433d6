"""power-of-two: sample two candidates at random and prefer the one with fewer requests in flight.

Cheap, needs no global minimum and avoids the herd effect of pure least-request when several
gateway replicas act on the same stale view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.routing.api import Category, check_params
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest

TYPE = "power-of-two"


@dataclass
class PowerOfTwoScorer:
    name: str = TYPE
    category: Category = "distribution"
    needs_prompt: bool = False

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        scores = dict.fromkeys((e.id for e in endpoints), 0.0)
        if len(endpoints) <= 1:
            return dict.fromkeys(scores, 1.0)
        a, b = ctx.rng.sample(list(endpoints), 2)
        load_a, load_b = a.in_flight + a.metrics.waiting, b.in_flight + b.metrics.waiting
        if load_a == load_b:
            scores[a.id] = scores[b.id] = 1.0
        else:
            scores[(a if load_a < load_b else b).id] = 1.0
            scores[(b if load_a < load_b else a).id] = 0.5
        return scores


def from_params(name: str, raw: dict[str, object] | None) -> PowerOfTwoScorer:
    check_params(TYPE, raw, [])
    return PowerOfTwoScorer(name=name)
