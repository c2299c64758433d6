"""The contracts every routing plugin implements (no I/O, no clocks: `ctx` carries now and rng)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

P = TypeVar("P", bound="DataclassInstance")

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


@runtime_checkable
class ForgetsEndpoints(Protocol):
    """Optional hook of stateful strategies: drop what they keep about endpoints discovery no longer has."""

    def forget_endpoints(self, keep: Iterable[str]) -> None: ...


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


def as_int(raw: Mapping[str, object], key: str, default: int) -> int:
    """raw[key] as int() reads it (a number or a numeric string), `default` when absent."""
    value = raw.get(key, default)
    if isinstance(value, int | float | str | bytes):
        return int(value)
    raise TypeError(f"{key}: expected a number, got {value!r}")


def as_float(raw: Mapping[str, object], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, int | float | str | bytes):
        return float(value)
    raise TypeError(f"{key}: expected a number, got {value!r}")


def parse_params(cls: type[P], type_name: str, raw: dict[str, object] | None) -> P:
    """A strategy's frozen Params dataclass from the raw `params:` mapping: unknown names are refused,
    numbers converted as int()/float() read them, flags and strings as bool()/str(); a value that
    does not convert raises ValueError "<type>: bad parameter value: ...". The dataclass's own
    __post_init__ checks ranges."""
    fields = dataclasses.fields(cls)
    p = check_params(type_name, raw, [f.name for f in fields])
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    try:
        for f in fields:
            if f.name not in p:
                continue
            kind = hints[f.name]
            if kind is int:
                kwargs[f.name] = as_int(p, f.name, 0)
            elif kind is float:
                kwargs[f.name] = as_float(p, f.name, 0.0)
            elif kind is bool:
                kwargs[f.name] = bool(p[f.name])
            else:
                kwargs[f.name] = str(p[f.name])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{type_name}: bad parameter value: {exc}") from None
    return cls(**kwargs)


def check_params(type_name: str, raw: dict[str, object] | None, allowed: Sequence[str]) -> dict[str, object]:
    """Reject unknown parameter names with a message naming the plugin type."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{type_name}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
    return raw
