"""prefix-cache-aware: send a prompt where its prefix is most likely still in the KV cache,
unless that would overload one endpoint.

1. Tokenise the prompt like engine_mock (brix.tokenizer) and hash it into chained blocks
   (brix.prefix.block_hashes), at most `max_blocks` blocks.
2. Load = requests in flight from this gateway + the engine's waiting queue. If the load is
   imbalanced — max-min > `balance_abs_threshold` AND max > `balance_rel_threshold` * min —
   score by least load only (sglang-router's rule).
3. Otherwise match each endpoint against the index. If the best match ratio (matched blocks /
   prompt blocks) is >= `match_threshold`, score = 0.9 * ratio + 0.1 * least-load score, so the
   best match wins and equal matches go to the less loaded endpoint.
4. Else score by least load (spread new prefixes).
After the pick, the chosen endpoint is recorded as holding the prompt's blocks; entries age out
after `ttl_s` and each endpoint keeps at most `capacity_blocks` (or the engine's
num_gpu_blocks from vllm:cache_config_info when `auto_capacity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from brix.prefix import block_hashes
from brix.tokenizer import token_ids
from gateway.model import EndpointState, RoutingContext, RoutingRequest
from gateway.routing.api import Category, check_params, least
from gateway.routing.prefix_index import PrefixIndex

TYPE = "prefix-cache-aware"
NOTE_HASHES = "prefix.hashes"


@dataclass
class PrefixCacheScorer:
    name: str = TYPE
    block_size: int = 16
    max_blocks: int = 4096
    match_threshold: float = 0.3
    balance_abs_threshold: float = 8.0
    balance_rel_threshold: float = 1.5
    ttl_s: float = 600.0
    capacity_blocks: int = 100_000
    auto_capacity: bool = True
    category: Category = "affinity"
    needs_prompt: bool = True
    index: PrefixIndex = field(init=False, repr=False)
    # hashes of the request being routed, kept between score() and routed() (one decision at a time)
    _pending: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = PrefixIndex(self.ttl_s, self.capacity_blocks)

    def hashes(self, prompt: str | None) -> list[int]:
        if not prompt:
            return []
        ids = token_ids(prompt[: self.block_size * self.max_blocks * 8])
        return block_hashes(ids[: self.block_size * self.max_blocks], self.block_size)

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        hashes = self.hashes(request.prompt)
        self._pending[request.request_id] = hashes
        load = {e.id: e.in_flight + e.metrics.waiting for e in endpoints}
        by_load = least(load)
        if not endpoints:
            return {}
        hi, lo = max(load.values()), min(load.values())
        if hi - lo > self.balance_abs_threshold and hi > self.balance_rel_threshold * lo:
            ctx.notes["prefix.imbalanced"] = 1.0
            return by_load
        if not hashes:
            return by_load
        ratios = {e.id: self.index.match(e.id, request.model, hashes, ctx.now) / len(hashes) for e in endpoints}
        best = max(ratios.values())
        if best >= self.match_threshold and best > 0:
            return {eid: 0.9 * ratios[eid] + 0.1 * by_load[eid] for eid in ratios}
        return by_load

    def routed(self, ctx: RoutingContext, request: RoutingRequest, endpoint: EndpointState) -> None:
        hashes = self._pending.pop(request.request_id, None)
        if not hashes:
            return
        matched = self.index.match(endpoint.id, request.model, hashes, ctx.now)
        ctx.notes["prefix.matched_blocks"] = float(matched)
        ctx.notes["prefix.total_blocks"] = float(len(hashes))
        m = endpoint.metrics
        capacity = 0
        if self.auto_capacity and m.num_gpu_blocks:
            # the engine's KV capacity in this index's block size
            capacity = max(1, m.num_gpu_blocks * (m.block_size or self.block_size) // self.block_size)
        self.index.insert(endpoint.id, request.model, hashes, ctx.now, capacity)

    def abandon(self, request: RoutingRequest) -> None:
        self._pending.pop(request.request_id, None)


def from_params(name: str, raw: dict[str, object] | None) -> PrefixCacheScorer:
    allowed = ["block_size", "max_blocks", "match_threshold", "balance_abs_threshold",
               "balance_rel_threshold", "ttl_s", "capacity_blocks", "auto_capacity"]
    p = check_params(TYPE, raw, allowed)
    try:
        scorer = PrefixCacheScorer(
            name=name,
            block_size=int(p.get("block_size", 16)),  # type: ignore[call-overload]
            max_blocks=int(p.get("max_blocks", 4096)),  # type: ignore[call-overload]
            match_threshold=float(p.get("match_threshold", 0.3)),  # type: ignore[arg-type]
            balance_abs_threshold=float(p.get("balance_abs_threshold", 8.0)),  # type: ignore[arg-type]
            balance_rel_threshold=float(p.get("balance_rel_threshold", 1.5)),  # type: ignore[arg-type]
            ttl_s=float(p.get("ttl_s", 600.0)),  # type: ignore[arg-type]
            capacity_blocks=int(p.get("capacity_blocks", 100_000)),  # type: ignore[call-overload]
            auto_capacity=bool(p.get("auto_capacity", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TYPE}: bad parameter value: {exc}") from None
    if scorer.block_size < 1 or scorer.max_blocks < 1 or scorer.capacity_blocks < 1:
        raise ValueError(f"{TYPE}: block_size, max_blocks and capacity_blocks must be >= 1")
    if not 0.0 <= scorer.match_threshold <= 1.0:
        raise ValueError(f"{TYPE}: match_threshold must be within [0, 1], got {scorer.match_threshold}")
    if scorer.balance_abs_threshold < 0 or scorer.balance_rel_threshold < 1.0 or scorer.ttl_s <= 0:
        raise ValueError(f"{TYPE}: need balance_abs_threshold >= 0, balance_rel_threshold >= 1, ttl_s > 0")
    return scorer
