"""prefix-cache-aware: send a prompt where its estimated time to first token is lowest, counting
what the endpoint probably still holds in its KV cache.

1. Tokenise the prompt like engine_mock (brix.tokenizer) and hash it into chained blocks
   (brix.prefix.block_hashes), at most `max_blocks` blocks.
2. mode "cost" (default): per endpoint, cost = uncached prompt tokens this gateway has sent there
   and not yet seen first bytes for (its own ledger: fresher than any scrape)
   + `request_overhead_tokens` x requests there (max of this gateway's in-flight count and the
   engine's running + waiting, so other gateways' traffic counts)
   + `uncached_weight` x this prompt's tokens past the endpoint's matched prefix.
   The cheapest endpoint scores 1, the dearest 0. `uncached_weight` > 1 values a cache hit above
   its own prefill time, because a miss also costs the engine cache space and later requests time.
3. mode "threshold" (sglang-router's rule): load = in-flight + engine waiting; if max-min >
   `balance_abs_threshold` AND max > `balance_rel_threshold` * min, least load only; else if the
   best match ratio >= `match_threshold`, 0.9 * ratio + 0.1 * least-load score; else least load.
After the pick, the chosen endpoint is recorded as holding the prompt's blocks; entries age out
after `ttl_s` and each endpoint keeps at most `capacity_blocks` (or the engine's
num_gpu_blocks from vllm:cache_config_info when `auto_capacity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    mode: str = "cost"
    request_overhead_tokens: float = 128.0
    uncached_weight: float = 4.0
    category: Category = "affinity"
    needs_prompt: bool = True
    index: PrefixIndex = field(init=False, repr=False)
    # hashes of the request being routed, kept between score() and routed() (one decision at a time)
    _pending: dict[str, tuple[list[int], int]] = field(default_factory=dict, repr=False)
    # cost mode: uncached prompt tokens this gateway sent to each endpoint and not yet seen finish,
    # endpoint -> request id -> (tokens, routed at)
    _outstanding: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict, repr=False)
    _outstanding_sum: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = PrefixIndex(self.ttl_s, self.capacity_blocks)

    def hashes(self, prompt: str | None) -> list[int]:
        return self._tokenise(prompt)[0]

    def _tokenise(self, prompt: str | None) -> tuple[list[int], int]:
        """(chained block hashes, prompt tokens counted, capped like the hashes)."""
        if not prompt:
            return [], 0
        ids = token_ids(prompt[: self.block_size * self.max_blocks * 8])
        return block_hashes(ids[: self.block_size * self.max_blocks], self.block_size), len(ids)

    def outstanding_tokens(self, endpoint: str) -> int:
        return self._outstanding_sum.get(endpoint, 0)

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        hashes, n_tokens = self._tokenise(request.prompt)
        self._pending[request.request_id] = (hashes, n_tokens)
        if not endpoints:
            return {}
        if self.mode == "cost":
            return least(self._costs(ctx, request, endpoints, hashes, n_tokens))
        load = {e.id: e.in_flight + e.metrics.waiting for e in endpoints}
        by_load = least(load)
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

    def _costs(self, ctx: RoutingContext, request: RoutingRequest, endpoints: Sequence[EndpointState],
               hashes: list[int], n_tokens: int) -> dict[str, float]:
        """Estimated time to first token of this request on each endpoint, in prefill tokens:
        the uncached prompt tokens already queued there by this gateway, plus a fixed overhead per
        request in the engine's batch (this gateway's in-flight count or the engine's
        running + waiting, whichever is larger, so other gateways' traffic counts too), plus this
        prompt's tokens that the endpoint probably does not hold."""
        costs: dict[str, float] = {}
        for e in endpoints:
            matched = self.index.match(e.id, request.model, hashes, ctx.now) if hashes else 0
            uncached = max(0, n_tokens - matched * self.block_size)
            requests = max(float(e.in_flight), e.metrics.running + e.metrics.waiting)
            costs[e.id] = (self.outstanding_tokens(e.id) + self.request_overhead_tokens * requests
                          + self.uncached_weight * uncached)
        return costs

    def routed(self, ctx: RoutingContext, request: RoutingRequest, endpoint: EndpointState) -> None:
        hashes, n_tokens = self._pending.pop(request.request_id, ([], 0))
        if self.mode == "cost" and request.request_id:
            matched = self.index.match(endpoint.id, request.model, hashes, ctx.now) if hashes else 0
            pending = self._outstanding.setdefault(endpoint.id, {})
            stale = ctx.now - self.ttl_s     # a request never released (lost hook) stops counting
            for rid in [r for r, (_, at) in pending.items() if at < stale]:
                self._drop(endpoint.id, rid)
            self._drop(endpoint.id, request.request_id)
            tokens = max(0, n_tokens - matched * self.block_size)
            pending[request.request_id] = (tokens, ctx.now)
            self._outstanding_sum[endpoint.id] = self._outstanding_sum.get(endpoint.id, 0) + tokens
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

    def released(self, request: RoutingRequest, endpoint_id: str) -> None:
        """First bytes came from `endpoint_id`, or the attempt ended: its prefill no longer queues there."""
        self._drop(endpoint_id, request.request_id)

    def forget_endpoints(self, keep: Iterable[str]) -> None:
        """Discovery removed endpoints: drop their prefix index entries and queued-prefill ledger."""
        alive = set(keep)
        self.index.forget_endpoints(alive)
        for endpoint in [e for e in self._outstanding if e not in alive]:
            del self._outstanding[endpoint]
            self._outstanding_sum.pop(endpoint, None)

    def _drop(self, endpoint_id: str, request_id: str) -> None:
        pending = self._outstanding.get(endpoint_id)
        entry = pending.pop(request_id, None) if pending is not None else None
        if entry is not None:
            self._outstanding_sum[endpoint_id] -= entry[0]


def from_params(name: str, raw: dict[str, object] | None) -> PrefixCacheScorer:
    allowed = ["block_size", "max_blocks", "match_threshold", "balance_abs_threshold",
               "balance_rel_threshold", "ttl_s", "capacity_blocks", "auto_capacity", "mode",
               "request_overhead_tokens", "uncached_weight"]
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
            mode=str(p.get("mode", "cost")),
            request_overhead_tokens=float(p.get("request_overhead_tokens", 128.0)),  # type: ignore[arg-type]
            uncached_weight=float(p.get("uncached_weight", 4.0)),  # type: ignore[arg-type]
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{TYPE}: bad parameter value: {exc}") from None
    if scorer.block_size < 1 or scorer.max_blocks < 1 or scorer.capacity_blocks < 1:
        raise ValueError(f"{TYPE}: block_size, max_blocks and capacity_blocks must be >= 1")
    if not 0.0 <= scorer.match_threshold <= 1.0:
        raise ValueError(f"{TYPE}: match_threshold must be within [0, 1], got {scorer.match_threshold}")
    if scorer.balance_abs_threshold < 0 or scorer.balance_rel_threshold < 1.0 or scorer.ttl_s <= 0:
        raise ValueError(f"{TYPE}: need balance_abs_threshold >= 0, balance_rel_threshold >= 1, ttl_s > 0")
    if scorer.mode not in ("cost", "threshold"):
        raise ValueError(f"{TYPE}: mode must be 'cost' or 'threshold', got {scorer.mode!r}")
    if scorer.request_overhead_tokens < 0 or scorer.uncached_weight < 0:
        raise ValueError(f"{TYPE}: request_overhead_tokens and uncached_weight must be >= 0")
    return scorer
