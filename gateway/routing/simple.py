"""Scorers that read one number per endpoint: random, least-request, least-kv-cache,
least-gpu-cache, throughput. Each is a few lines; they share this module to avoid five
near-empty files (the prefix, latency, lora, session and power-of-two scorers have their own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.routing.api import Category, check_params, least
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest


@dataclass
class RandomScorer:
    """Every endpoint scores 1; the picker's random tie-break makes the choice uniform."""

    name: str = "random"
    category: Category = "distribution"
    needs_prompt: bool = False
    TYPE = "random"

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        return dict.fromkeys((e.id for e in endpoints), 1.0)


@dataclass
class LeastRequestScorer:
    """Fewest requests in flight from this gateway (+ the engine's waiting queue when `include_waiting`).

    The gateway's own count reacts within the request, unlike a scrape (AIBrix PR #933).
    """

    name: str = "least-request"
    include_waiting: bool = False
    category: Category = "balance"
    needs_prompt: bool = False
    TYPE = "least-request"

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        return least({e.id: e.in_flight + (e.metrics.waiting if self.include_waiting else 0.0) for e in endpoints})


@dataclass
class LeastKvCacheScorer:
    """Lowest KV-cache use: vllm:kv_cache_usage_perc (+ cpu_cache_usage_perc), as AIBrix least-kv-cache."""

    name: str = "least-kv-cache"
    category: Category = "balance"
    needs_prompt: bool = False
    TYPE = "least-kv-cache"

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        return least({e.id: e.metrics.kv_cache_usage + e.metrics.cpu_cache_usage for e in endpoints})


@dataclass
class LeastGpuCacheScorer:
    """Lowest vllm:gpu_cache_usage_perc (falls back to kv_cache_usage_perc when an engine only exports that)."""

    name: str = "least-gpu-cache"
    category: Category = "balance"
    needs_prompt: bool = False
    TYPE = "least-gpu-cache"

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        return least({e.id: e.metrics.gpu_cache_usage or e.metrics.kv_cache_usage for e in endpoints})


@dataclass
class ThroughputScorer:
    """Least token throughput being processed: 2*prompt tok/s + generation tok/s (AIBrix `throughput`),
    rates from consecutive scrapes."""

    name: str = "throughput"
    category: Category = "balance"
    needs_prompt: bool = False
    TYPE = "throughput"

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        return least({e.id: 2 * e.metrics.prompt_tokens_per_s + e.metrics.generation_tokens_per_s
                      for e in endpoints})


def random_from_params(name: str, raw: dict[str, object] | None) -> RandomScorer:
    check_params("random", raw, [])
    return RandomScorer(name=name)


def least_request_from_params(name: str, raw: dict[str, object] | None) -> LeastRequestScorer:
    p = check_params("least-request", raw, ["include_waiting"])
    return LeastRequestScorer(name=name, include_waiting=bool(p.get("include_waiting", False)))


def least_kv_cache_from_params(name: str, raw: dict[str, object] | None) -> LeastKvCacheScorer:
    check_params("least-kv-cache", raw, [])
    return LeastKvCacheScorer(name=name)


def least_gpu_cache_from_params(name: str, raw: dict[str, object] | None) -> LeastGpuCacheScorer:
    check_params("least-gpu-cache", raw, [])
    return LeastGpuCacheScorer(name=name)


def throughput_from_params(name: str, raw: dict[str, object] | None) -> ThroughputScorer:
    check_params("throughput", raw, [])
    return ThroughputScorer(name=name)
