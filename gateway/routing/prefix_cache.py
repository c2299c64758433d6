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
from dataclasses import dataclass, replace
from typing import Any

from brix.prefix import block_hashes
from brix.tokenizer import token_ids
from gateway.routing.api import Category, least, parse_params
from gateway.routing.model import EndpointState, RoutingContext, RoutingRequest, ScratchKey
from gateway.routing.prefix_index import PrefixIndex

TYPE = "prefix-cache-aware"


@dataclass(frozen=True)
class PrefixMatch:
    """Left in the decision's scratch after the pick: how much of the prompt the chosen endpoint held."""

    matched_blocks: int
    total_blocks: int


# what a decision leaves for the caller (the gateway counts them in its metrics)
MATCH: ScratchKey[PrefixMatch] = ScratchKey("prefix.match")
IMBALANCED: ScratchKey[bool] = ScratchKey("prefix.imbalanced")


@dataclass(frozen=True)
class PrefixCacheParams:
    """The strategy's parameters (`params:` of a prefix-cache-aware plugin in --config), checked here."""

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

    def __post_init__(self) -> None:
        if self.block_size < 1 or self.max_blocks < 1 or self.capacity_blocks < 1:
            raise ValueError(f"{TYPE}: block_size, max_blocks and capacity_blocks must be >= 1")
        if not 0.0 <= self.match_threshold <= 1.0:
            raise ValueError(f"{TYPE}: match_threshold must be within [0, 1], got {self.match_threshold}")
        if self.balance_abs_threshold < 0 or self.balance_rel_threshold < 1.0 or self.ttl_s <= 0:
            raise ValueError(f"{TYPE}: need balance_abs_threshold >= 0, balance_rel_threshold >= 1, ttl_s > 0")
        if self.mode not in ("cost", "threshold"):
            raise ValueError(f"{TYPE}: mode must be 'cost' or 'threshold', got {self.mode!r}")
        if self.request_overhead_tokens < 0 or self.uncached_weight < 0:
            raise ValueError(f"{TYPE}: request_overhead_tokens and uncached_weight must be >= 0")


class PrefixCacheScorer:
    """`PrefixCacheScorer(name, params)`; keyword arguments override single parameters
    (`PrefixCacheScorer(mode="threshold")`) and are checked like the config's."""

    category: Category = "affinity"
    needs_prompt: bool = True

    def __init__(self, name: str = TYPE, params: PrefixCacheParams | None = None, **overrides: Any) -> None:
        params = params or PrefixCacheParams()
        self.name = name
        self.params = replace(params, **overrides) if overrides else params
        self.index = PrefixIndex(self.params.ttl_s, self.params.capacity_blocks)
        # the request being decided: its (block hashes, prompt tokens), from score() to routed()
        self._tokens: ScratchKey[tuple[list[int], int]] = ScratchKey(f"{name}.tokens")
        # cost mode: uncached prompt tokens this gateway sent to each endpoint and not yet seen finish,
        # endpoint -> request id -> (tokens, routed at)
        self._outstanding: dict[str, dict[str, tuple[int, float]]] = {}
        self._outstanding_sum: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"PrefixCacheScorer(name={self.name!r}, params={self.params!r})"

    @property
    def mode(self) -> str:
        return self.params.mode

    @property
    def block_size(self) -> int:
        return self.params.block_size

    def hashes(self, prompt: str | None) -> list[int]:
        return self._tokenise(prompt)[0]

    def _tokenise(self, prompt: str | None) -> tuple[list[int], int]:
        """(chained block hashes, prompt tokens counted, capped like the hashes)."""
        if not prompt:
            return [], 0
        bs, limit = self.params.block_size, self.params.block_size * self.params.max_blocks
        ids = token_ids(prompt[: limit * 8])
        return block_hashes(ids[:limit], bs), len(ids)

    def outstanding_tokens(self, endpoint: str) -> int:
        return self._outstanding_sum.get(endpoint, 0)

    def score(self, ctx: RoutingContext, request: RoutingRequest,
              endpoints: Sequence[EndpointState]) -> dict[str, float]:
        p = self.params
        hashes, n_tokens = tokens = self._tokenise(request.prompt)
        ctx.put(self._tokens, tokens)
        if not endpoints:
            return {}
        if p.mode == "cost":
            return least(self._costs(ctx, request, endpoints, hashes, n_tokens))
        load = {e.id: e.in_flight + e.metrics.waiting for e in endpoints}
        by_load = least(load)
        hi, lo = max(load.values()), min(load.values())
        if hi - lo > p.balance_abs_threshold and hi > p.balance_rel_threshold * lo:
            ctx.put(IMBALANCED, True)
            return by_load
        if not hashes:
            return by_load
        ratios = {e.id: self.index.match(e.id, request.model, hashes, ctx.now) / len(hashes) for e in endpoints}
        best = max(ratios.values())
        if best >= p.match_threshold and best > 0:
            return {eid: 0.9 * ratios[eid] + 0.1 * by_load[eid] for eid in ratios}
        return by_load

    def _costs(self, ctx: RoutingContext, request: RoutingRequest, endpoints: Sequence[EndpointState],
               hashes: list[int], n_tokens: int) -> dict[str, float]:
        """Estimated time to first token of this request on each endpoint, in prefill tokens:
        the uncached prompt tokens already queued there by this gateway, plus a fixed overhead per
        request in the engine's batch (this gateway's in-flight count or the engine's
        running + waiting, whichever is larger, so other gateways' traffic counts too), plus this
        prompt's tokens that the endpoint probably does not hold."""
        p = self.params
        costs: dict[str, float] = {}
        for e in endpoints:
            matched = self.index.match(e.id, request.model, hashes, ctx.now) if hashes else 0
            uncached = max(0, n_tokens - matched * p.block_size)
            requests = max(float(e.in_flight), e.metrics.running + e.metrics.waiting)
            costs[e.id] = (self.outstanding_tokens(e.id) + p.request_overhead_tokens * requests
                          + p.uncached_weight * uncached)
        return costs

    def routed(self, ctx: RoutingContext, request: RoutingRequest, endpoint: EndpointState) -> None:
        p = self.params
        hashes, n_tokens = ctx.get(self._tokens) or ([], 0)
        if p.mode == "cost" and request.request_id:
            matched = self.index.match(endpoint.id, request.model, hashes, ctx.now) if hashes else 0
            pending = self._outstanding.setdefault(endpoint.id, {})
            stale = ctx.now - p.ttl_s     # a request never released (lost hook) stops counting
            for rid in [r for r, (_, at) in pending.items() if at < stale]:
                self._drop(endpoint.id, rid)
            self._drop(endpoint.id, request.request_id)
            tokens = max(0, n_tokens - matched * p.block_size)
            pending[request.request_id] = (tokens, ctx.now)
            self._outstanding_sum[endpoint.id] = self._outstanding_sum.get(endpoint.id, 0) + tokens
        if not hashes:
            return
        matched = self.index.match(endpoint.id, request.model, hashes, ctx.now)
        ctx.put(MATCH, PrefixMatch(matched, len(hashes)))
        m = endpoint.metrics
        capacity = 0
        if p.auto_capacity and m.num_gpu_blocks:
            # the engine's KV capacity in this index's block size
            capacity = max(1, m.num_gpu_blocks * (m.block_size or p.block_size) // p.block_size)
        self.index.insert(endpoint.id, request.model, hashes, ctx.now, capacity)

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
    return PrefixCacheScorer(name, parse_params(PrefixCacheParams, TYPE, raw))
