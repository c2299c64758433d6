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

T = TypeVar("T")


@dataclass(frozen=True)
class EndpointMetrics:
    """One scrape of an engine's vLLM /metrics page, reduced to what strategies read.

    Missing metrics stay at their default; `scraped_at` (monotonic seconds, 0 = never) lets
    filters treat old data as stale.
    """

    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0      # 0..1, vllm:kv_cache_usage_perc
    gpu_cache_usage: float = 0.0     # 0..1, vllm:gpu_cache_usage_perc (older vLLM name)
    cpu_cache_usage: float = 0.0     # 0..1, vllm:cpu_cache_usage_perc
    prefix_cache_hits: float = 0.0   # counter, tokens
    prefix_cache_queries: float = 0.0
    prompt_tokens: float = 0.0       # counter
    generation_tokens: float = 0.0   # counter
    requests_finished: float = 0.0   # counter, vllm:request_success_total
    ttft_sum: float = 0.0
    ttft_count: float = 0.0
    queue_time_sum: float = 0.0
    queue_time_count: float = 0.0
    prefill_time_sum: float = 0.0
    prefill_time_count: float = 0.0
    decode_time_sum: float = 0.0
    decode_time_count: float = 0.0
    num_gpu_blocks: int = 0          # from vllm:cache_config_info, 0 when not exported
    block_size: int = 0
    max_lora: int = 0
    running_lora_adapters: frozenset[str] = frozenset()
    waiting_lora_adapters: frozenset[str] = frozenset()
    # rates computed from two consecutive scrapes (tokens per second)
    prompt_tokens_per_s: float = 0.0
    generation_tokens_per_s: float = 0.0
    scraped_at: float = 0.0

    @property
    def avg_prompt_tokens(self) -> float:
        return self.prompt_tokens / self.requests_finished if self.requests_finished else 0.0

    @property
    def avg_generation_tokens(self) -> float:
        return self.generation_tokens / self.requests_finished if self.requests_finished else 0.0


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
