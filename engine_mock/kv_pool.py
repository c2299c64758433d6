"""engine-mock's link to a shared KV block pool (`--kv-pool URL`, kvcache/): the I/O edge around the
pure scheduler.

Before a request is admitted, the prompt blocks after the engine's own prefix-cache hit are
asked from the pool (one batched GET). The leading run the pool holds is "transferred": the
request waits `blocks x block_bytes / bandwidth` simulated seconds (block_bytes is the real KV
size of a block, block_size x 512 KiB for Llama-2-7B fp16), then those blocks enter the local
prefix cache, pinned for the request while it queues (as an engine that loaded KV into GPU
blocks keeps them), so admission finds them like any prefix hit and does not recompute them.
Pins are released once the request is scheduled; pinned blocks of queued requests are capped at
half the KV cache so that queued loads never starve the running batch. The wait is part of the
request's TTFT. After each step that completed prompt blocks (a prefill chunk), the request's full
prompt blocks so far are written back to the pool in the background, as vLLM's KV connectors save
each chunk's KV when it is computed (at most MAX_WRITES in flight; more are dropped and counted),
skipping blocks this engine already fetched or wrote.

What crosses the wire is a stand-in of `value_bytes` per block, a function of the block hash,
so a reader can check it got the right block; the modelled transfer time uses the real size.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence

from brix.logs import kv
from engine_mock.kv_cache import KVCache

log = logging.getLogger(__name__)
MAX_WRITES = 64
KNOWN_LIMIT = 200_000


class PoolLink:
    def __init__(self, url: str, model: str, block_size: int, block_bytes: int, bandwidth_bytes_s: float,
                 value_bytes: int) -> None:
        from kvcache.client import PoolClient
        from kvcache.protocol import Namespace

        self.client = PoolClient(url, timeout_s=1.0)
        self.ns = Namespace(model, block_size)
        self.block_size = block_size
        self.block_bytes = block_bytes
        self.bandwidth = bandwidth_bytes_s
        self.value_bytes = value_bytes
        self.known: OrderedDict[int, None] = OrderedDict()  # blocks this engine knows the pool has
        self.writes: set[asyncio.Task[None]] = set()
        # counters
        self.lookups = 0
        self.blocks_fetched = 0
        self.tokens_from_pool = 0
        self.blocks_written = 0
        self.writes_dropped = 0
        self.wrong_values = 0
        self.transfer_s = 0.0

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        for t in list(self.writes):
            t.cancel()
        await asyncio.gather(*self.writes, return_exceptions=True)
        await self.client.close()

    def value_for(self, h: int) -> bytes:
        unit = h.to_bytes(8, "little")
        return (unit * (self.value_bytes // 8 + 1))[:self.value_bytes]

    def _remember(self, hashes: Sequence[int]) -> None:
        known = self.known
        for h in hashes:
            known[h] = None
            known.move_to_end(h)
        while len(known) > KNOWN_LIMIT:
            known.popitem(last=False)

    async def fetch(self, kv_cache: KVCache, hashes: Sequence[int], prompt_len: int, speed: float,
                    pin_budget: int) -> list[int]:
        """Load the pool's blocks that follow the local prefix hit; returns the blocks pinned for the
        request (at most `pin_budget`; beyond it, loaded blocks are only cached, and may be evicted
        before the request is admitted).

        Waits the modelled transfer time (simulated seconds / speed) before the blocks appear.
        """
        cap = (prompt_len - 1) // self.block_size  # the last prompt token is always computed
        wanted = hashes[:cap]
        local = kv_cache.match(wanted)
        missing = wanted[local:]
        if not missing:
            return []
        self.lookups += 1
        values = await self.client.get_prefix(self.ns, missing)
        good = 0
        for h, v in zip(missing, values, strict=False):
            if v != self.value_for(h):  # a wrong block is a miss, never used
                self.wrong_values += 1
                break
            good += 1
        if not good:
            return []
        transfer = good * self.block_bytes / self.bandwidth
        self.transfer_s += transfer
        await asyncio.sleep(transfer / speed)
        # the local prefix may have been evicted meanwhile: load only behind what is still resident
        start = kv_cache.match(wanted)
        if start < local:
            return []
        chain = wanted[:local + good]
        pin = local + good <= pin_budget
        resident = kv_cache.load(chain, pin=pin)  # the local prefix too: it must survive with them
        loaded = max(0, resident - start)
        self._remember(missing[:good])
        self.blocks_fetched += loaded
        self.tokens_from_pool += loaded * self.block_size
        return list(chain[:resident]) if pin else []

    def write_back(self, hashes: Sequence[int]) -> None:
        """Write the prompt's full blocks the pool may not have, in the background."""
        new = [h for h in hashes if h not in self.known]
        if not new:
            return
        if len(self.writes) >= MAX_WRITES:
            self.writes_dropped += 1
            return
        self._remember(new)
        task = asyncio.create_task(self._put(new))
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)

    async def _put(self, hashes: list[int]) -> None:
        try:
            stored = await self.client.put(self.ns, [(h, self.value_for(h)) for h in hashes])
        except Exception as exc:  # noqa: BLE001 - a failed write-back only costs future hits
            kv(log, "kv pool write-back failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
            stored = 0
        self.blocks_written += stored
        if stored < len(hashes):
            for h in hashes:
                self.known.pop(h, None)

    def render(self, model_name: str) -> str:
        label = f'{{model_name="{model_name}",engine="0"}}'
        rows = [
            ("engine_mock_kv_pool_prefill_tokens_total", "counter",
             "Prompt tokens whose KV came from the pool instead of being computed.", self.tokens_from_pool),
            ("engine_mock_kv_pool_blocks_fetched_total", "counter", "KV blocks loaded from the pool.",
             self.blocks_fetched),
            ("engine_mock_kv_pool_lookups_total", "counter", "Requests that asked the pool for missing blocks.",
             self.lookups),
            ("engine_mock_kv_pool_blocks_written_total", "counter", "KV blocks written back to the pool.",
             self.blocks_written),
            ("engine_mock_kv_pool_writes_dropped_total", "counter",
             "Write-backs skipped because too many were in flight.", self.writes_dropped),
            ("engine_mock_kv_pool_wrong_values_total", "counter",
             "Blocks the pool returned with the wrong content (treated as misses).", self.wrong_values),
            ("engine_mock_kv_pool_transfer_seconds_total", "counter",
             "Modelled (simulated) seconds spent loading blocks from the pool.", self.transfer_s),
        ]
        out = []
        for name, kind, doc, value in rows:
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n{name}{label} {float(value)}\n")
        return "".join(out)
