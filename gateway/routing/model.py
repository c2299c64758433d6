"""Plain data the gateway routes on: endpoints, their scraped metrics, one routing request.

Everything here is immutable (frozen dataclasses, tuples, frozensets) so that a routing
decision reads one consistent snapshot while the scraper and discovery replace it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


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


@dataclass
class RoutingContext:
    """Per-decision inputs that make strategies deterministic in tests."""

    now: float
    rng: random.Random
    # per-decision scratch a scorer may leave for the caller (e.g. prefix match ratio)
    notes: dict[str, float] = field(default_factory=dict)


class RoutingError(Exception):
    """A request that cannot be routed; `status` and `code` become the OpenAI error JSON."""

    def __init__(self, status: int, message: str, code: str, err_type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.code = code
        self.err_type = err_type
