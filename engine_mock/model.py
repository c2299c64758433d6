"""Data types of engine_mock: one simulated request, one engine step, the engine's counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, eq=False)
class SimRequest:
    """One sequence inside the simulated engine. Times are simulated seconds."""

    rid: int
    prompt_len: int
    max_tokens: int
    block_hashes: list[int]
    arrival: float
    lora: str | None = None
    # progress
    num_computed: int = 0  # tokens whose KV is in the cache (prompt and fed-back output)
    num_generated: int = 0
    cached_tokens: int = 0  # prefix-cache hit at first scheduling
    # KV blocks held
    held_hashes: list[int] = field(default_factory=list)
    private_blocks: int = 0
    scanned_blocks: int = 0  # prompt blocks already offered to the prefix cache
    # timeline (simulated)
    first_scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    finished: float | None = None
    preemptions: int = 0
    # owned by the I/O edge: a future woken when tokens arrive
    waiter: Any = None
    stream: bool = False

    @property
    def num_blocks(self) -> int:
        return len(self.held_hashes) + self.private_blocks

    @property
    def done(self) -> bool:
        return self.finished is not None


@dataclass(slots=True)
class Step:
    """What one engine iteration did: it ran from `start` to `end` (simulated seconds)."""

    start: float
    end: float
    prefill_tokens: int = 0
    decode_tokens: int = 0
    emitted: list[SimRequest] = field(default_factory=list)  # got one new token at `end`
    finished: list[SimRequest] = field(default_factory=list)
    preempted: list[SimRequest] = field(default_factory=list)
    prefilled: list[SimRequest] = field(default_factory=list)  # computed new full prompt blocks
    itl: list[float] = field(default_factory=list)  # inter-token gaps of decode tokens

    @property
    def empty(self) -> bool:
        return self.prefill_tokens == 0 and self.decode_tokens == 0


@dataclass(slots=True)
class EngineCounters:
    """Monotonic totals since start (vLLM's *_total counters)."""

    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    preemptions: int = 0
    success: int = 0
    aborted: int = 0
    steps: int = 0
    busy_time: float = 0.0


@dataclass(frozen=True)
class Settings:
    """engine-mock's configuration, built from flags by cli.py."""

    port: int = 8000
    host: str = "127.0.0.1"
    model: str = "mock-model"
    served_model_names: tuple[str, ...] = ()
    gpu_type: str = "A100"
    profile_path: str | None = None
    max_loras: int = 4
    check_lora_paths: bool = False
    """A local lora_path that does not exist is refused (404), as vLLM does."""
    kv_blocks: int | None = None  # None: sized from the GPU profile
    block_size: int = 16
    max_num_seqs: int = 256
    max_model_len: int | None = None  # None: the profile's (4096)
    speed: float = 1.0
    """Simulated seconds per wall second; 10 runs ten times faster than the modelled GPU."""
    seed: int = 0
    fail_rate: float = 0.0
    """Test-only: fraction of generate requests answered with HTTP 500 (seeded, deterministic)."""
    v0_metrics: bool = False
    """Also export the series only vLLM's v0 engine had (num_requests_swapped, cpu_cache_usage_perc)."""
    kv_pool: str = ""
    """A KV block pool (kvcache://host:port,... or redis://host:port/0?pool=NAME): prompt blocks missing from
    the local prefix cache are loaded from it before admission, computed blocks are written back."""
    kv_pool_bandwidth: float = 12.5e9
    """Bytes per second of a pool transfer (modelled; 12.5e9 = a 100 Gb/s RDMA NIC)."""
    kv_pool_value_bytes: int = 4096
    """Bytes actually stored per block in the pool (a stand-in; the transfer time uses the real KV size)."""
    kv_pool_lookahead: int = 2
    """A request is looked up in the pool once fewer than this many requests wait for admission."""

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_model_names or (self.model,)


@dataclass
class Fault:
    """Test-only fault knobs, changed at run time through POST /admin/fault."""

    drop_connection_after_tokens: int | None = None
    slow_factor: float = 1.0
    unhealthy: bool = False
