"""Plain data routing decides on: endpoints, their scraped metrics, one routing request, and the
context of one decision.

Everything but the context is immutable (frozen dataclasses, tuples, frozensets) so that a
routing decision reads one consistent snapshot while the scraper and discovery replace it. The
rest of the gateway builds these values; nothing here imports it (routing stands alone).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from brix.vllm_metrics import EndpointMetrics

__all__ = ["EndpointMetrics", "EndpointState", "RoutingContext", "RoutingRequest", "ScratchKey"]

T = TypeVar("T")


@dataclass(frozen=True)
class EndpointState:
    """What a strategy knows about one endpoint at decision time."""

    id: str                                  # base URL, e.g. http://10.0.0.5:8000
    models: frozenset[str] = frozenset()     # base models and LoRA adapters it serves
    metrics: EndpointMetrics = EndpointMetrics()
    in_flight: int = 0                       # requests this gateway has open to it right now
    ready: bool = True


@dataclass(frozen=True)
class RoutingRequest:
    """The parts of a client request that routing may read."""

    model: str
    headers: dict[str, str] = field(default_factory=dict)   # lower-case names
    prompt: str | None = None     # only filled when a strategy in the profile needs it
    request_id: str = ""


class ScratchKey(Generic[T]):
    """A typed key into `RoutingContext.scratch`: the one place a scorer keeps what it worked out
    for the request being decided (between `score` and `routed`), or leaves for the caller to read
    after `pick` (e.g. how many prefix blocks matched). Keys compare by identity, so a module-level
    key is shared by every instance of a scorer and a key made per instance is its own."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ScratchKey({self.name!r})"


@dataclass
class RoutingContext:
    """Per-decision inputs that make strategies deterministic in tests, and the decision's scratch.

    One context serves one `Profile.pick` (filters, scores, then the post-route hooks), so what a
    scorer writes in `score` it reads back in `routed`, and nothing outlives the decision.
    """

    now: float
    rng: random.Random
    scratch: dict[object, object] = field(default_factory=dict)   # ScratchKey[T] -> T, through put/get

    def put(self, key: ScratchKey[T], value: T) -> None:
        self.scratch[key] = value

    def get(self, key: ScratchKey[T]) -> T | None:
        return cast("T | None", self.scratch.get(key))
