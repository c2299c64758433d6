"""The contracts every routing plugin implements (no I/O, no clocks: `ctx` carries now and rng)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from gateway.model import EndpointState, RoutingContext, RoutingRequest

Category = Literal["affinity", "distribution", "balance"]


@runtime_checkable
class Scorer(Protocol):
    """Scores each candidate in [0,1] (higher is better); values outside are clamped by the profile."""

    name: str
    category: Category
    needs_prompt: bool

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]: ...


@runtime_checkable
class Filter(Protocol):
    name: str

    def filter(self, ctx: RoutingContext, request: RoutingRequest,
               endpoints: Sequence[EndpointState]) -> list[EndpointState]: ...


@runtime_checkable
class PostRoute(Protocol):
    """Optional hook: told which endpoint won (prefix index, session table)."""

    def routed(self, ctx: RoutingContext, request: RoutingRequest, endpoint: EndpointState) -> None: ...


@runtime_checkable
class PostResponse(Protocol):
    """Optional hook: told when the chosen endpoint's first bytes arrived (its prefill is over) and
    again when the attempt ended or failed; must be idempotent."""

    def released(self, request: RoutingRequest, endpoint_id: str) -> None: ...


def least(values: dict[str, float]) -> dict[str, float]:
    """Normalise so the smallest value scores 1 and the largest 0; all equal -> 1 (AIBrix/GIE rule)."""
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    if hi - lo <= 1e-12:
        return dict.fromkeys(values, 1.0)
    span = hi - lo
    return {k: (hi - v) / span for k, v in values.items()}


def most(values: dict[str, float]) -> dict[str, float]:
    """Normalise so the largest value scores 1 and the smallest 0; all equal -> 1."""
    return least({k: -v for k, v in values.items()})


def check_params(type_name: str, raw: dict[str, object] | None, allowed: Sequence[str]) -> dict[str, object]:
    """Reject unknown parameter names with a message naming the plugin type."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{type_name}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    return raw
