"""The combination math, in one place: filters, weighted scorers, max-score pick with random ties.

A strategy spec is `name[:weight],name[:weight],...` with integer or float weights > 0 (default 1),
e.g. `prefix-cache-aware:3,least-request:2`. Weights are normalised by their sum; each score is
clamped to [0,1]; the picker takes the best total, and a uniformly random one of the endpoints
tied for it (within 1e-12), so equal scores spread evenly. Strategies never see weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.routing.api import Filter, PostResponse, PostRoute, Scorer
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest


@dataclass(frozen=True)
class WeightedScorer:
    scorer: Scorer
    weight: float


@dataclass(frozen=True)
class Profile:
    spec: str
    scorers: tuple[WeightedScorer, ...]
    filters: tuple[Filter, ...] = ()
    needs_prompt: bool = field(init=False)
    post_route: tuple[PostRoute, ...] = field(init=False)
    post_response: tuple[PostResponse, ...] = field(init=False)

    def __post_init__(self) -> None:
        # decided once here: a runtime Protocol isinstance check costs ~30 µs, too much per request
        object.__setattr__(self, "needs_prompt", any(ws.scorer.needs_prompt for ws in self.scorers))
        object.__setattr__(self, "post_route", tuple(ws.scorer for ws in self.scorers
                                                     if isinstance(ws.scorer, PostRoute)))
        object.__setattr__(self, "post_response", tuple(ws.scorer for ws in self.scorers
                                                        if isinstance(ws.scorer, PostResponse)))

    def pick(self, ctx: RoutingContext, request: RoutingRequest,
             endpoints: Sequence[EndpointState]) -> EndpointState | None:
        candidates: Sequence[EndpointState] = endpoints
        for f in self.filters:
            candidates = f.filter(ctx, request, candidates)
            if not candidates:
                return None
        if not candidates:
            return None
        if len(candidates) == 1 and len(self.scorers) == 1 and not self.needs_prompt:
            best = candidates[0]
        else:
            total_w = sum(ws.weight for ws in self.scorers)
            totals = dict.fromkeys((e.id for e in candidates), 0.0)
            for ws in self.scorers:
                share = ws.weight / total_w
                for eid, s in ws.scorer.score(ctx, request, candidates).items():
                    if eid in totals:
                        totals[eid] += share * (0.0 if s != s else min(1.0, max(0.0, s)))  # NaN -> 0
            top = max(totals.values())
            ties = [e for e in candidates if totals[e.id] >= top - 1e-12]
            best = ties[0] if len(ties) == 1 else ctx.rng.choice(ties)
        for hook in self.post_route:
            hook.routed(ctx, request, best)
        return best


    def released(self, request: RoutingRequest, endpoint_id: str) -> None:
        """Call after pick() returned an endpoint: at its first response bytes and when the attempt
        ended (hooks are idempotent)."""
        for hook in self.post_response:
            hook.released(request, endpoint_id)


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """`a:3,b:2,c` -> [("a", 3.0), ("b", 2.0), ("c", 1.0)]; raises ValueError with the bad part."""
    parts: list[tuple[str, float]] = []
    seen: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty entry in routing strategy {spec!r}")
        name, _, weight_text = item.partition(":")
        name = name.strip()
        weight = 1.0
        if weight_text:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(f"weight {weight_text!r} of {name!r} in {spec!r} is not a number") from None
            if not weight > 0 or weight > 1e6:
                raise ValueError(f"weight of {name!r} in {spec!r} must be in (0, 1e6], got {weight_text}")
        if name in seen:
            raise ValueError(f"{name!r} appears twice in routing strategy {spec!r}")
        seen.add(name)
        parts.append((name, weight))
    return parts


def build_profile(spec: str, resolve: Callable[[str], Scorer]) -> Profile:
    """Build a Profile from a spec; `resolve(name)` returns the (shared, stateful) scorer instance."""
    return Profile(spec=spec, scorers=tuple(WeightedScorer(resolve(n), w) for n, w in parse_spec(spec)))
