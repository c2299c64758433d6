"""Which strategy types exist, and how to build one from (name, params). A value, not a global."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.routing import (
    least_latency,
    lora_affinity,
    power_of_two,
    prefix_cache,
    session_affinity,
    simple,
)
from gateway.routing.api import Scorer

Factory = Callable[[str, dict[str, object] | None], Scorer]


@dataclass
class Registry:
    factories: dict[str, Factory] = field(default_factory=dict)

    def register(self, type_name: str, factory: Factory) -> None:
        if type_name in self.factories:
            raise ValueError(f"routing strategy type {type_name!r} registered twice")
        self.factories[type_name] = factory

    def build(self, type_name: str, name: str, params: dict[str, object] | None = None) -> Scorer:
        factory = self.factories.get(type_name)
        if factory is None:
            raise KeyError(f"unknown routing strategy {type_name!r}; known: {', '.join(sorted(self.factories))}")
        return factory(name, params)

    def types(self) -> list[str]:
        return sorted(self.factories)


def register_builtin() -> Registry:
    """Every built-in strategy, in one list (this is also the list of what exists)."""
    r = Registry()
    r.register("random", simple.random_from_params)
    r.register("least-request", simple.least_request_from_params)
    r.register("least-kv-cache", simple.least_kv_cache_from_params)
    r.register("least-gpu-cache", simple.least_gpu_cache_from_params)
    r.register("throughput", simple.throughput_from_params)
    r.register(least_latency.TYPE, least_latency.from_params)
    r.register(power_of_two.TYPE, power_of_two.from_params)
    r.register(session_affinity.TYPE, session_affinity.from_params)
    r.register(lora_affinity.TYPE, lora_affinity.from_params)
    r.register(prefix_cache.TYPE, prefix_cache.from_params)
    return r
