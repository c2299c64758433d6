"""The simulated continuous-batching engine: a pure step loop in simulated time.

Each `step(now)` is one vLLM V1 scheduler iteration followed by one forward pass:

1. Running sequences first, oldest first: each asks for its remaining prompt chunk (prefill)
   or one token (decode), limited by the step's token budget (max_num_batched_tokens). When a
   sequence needs a KV block and the pool is empty, the newest running sequence is preempted
   (its blocks freed, its tokens to be recomputed later) until the block fits.
2. Then waiting sequences, FCFS, while budget, max_num_seqs and KV blocks allow — unless this
   step preempted. A new sequence's leading prompt blocks found in the prefix cache are not
   recomputed (at least one token always is, as in vLLM). A sequence whose blocks do not fit
   stays waiting, and so does everything behind it.
3. The step's duration comes from the GPU profile (prefill tokens, decode batch, contexts);
   every sequence whose scheduled tokens reached its known length emits one token at the end.

No I/O, no clocks: the caller passes `now` and sleeps until `Step.end`.
"""

from __future__ import annotations

from collections import deque

from engine_mock.kv_cache import KVCache
from engine_mock.model import EngineCounters, SimRequest, Step
from engine_mock.profiles import Profile


class RequestTooLarge(ValueError):
    """The request can never fit in the KV cache (or the context window)."""


class Engine:
    def __init__(self, profile: Profile, kv: KVCache, max_num_seqs: int = 256, slow_factor: float = 1.0) -> None:
        self.profile = profile
        self.kv = kv
        self.block_size = kv.block_size
        self.max_num_seqs = max_num_seqs
        self.slow_factor = slow_factor
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self.counters = EngineCounters()

    # --- admission -------------------------------------------------------------------------
    def blocks_needed(self, prompt_len: int, max_tokens: int) -> int:
        return -(-(prompt_len + max_tokens) // self.block_size)

    def add(self, req: SimRequest) -> None:
        need = self.blocks_needed(req.prompt_len, req.max_tokens)
        if need > self.kv.num_blocks:
            raise RequestTooLarge(
                f"the request needs {need} KV cache blocks ({req.prompt_len} prompt + {req.max_tokens} output"
                f" tokens, {self.block_size} per block) but the engine has only {self.kv.num_blocks};"
                " send a shorter prompt or fewer max_tokens, or start engine-mock with more --kv-blocks")
        self.waiting.append(req)

    def abort(self, req: SimRequest) -> bool:
        """Drop a request (client went away). Returns False if it had already finished."""
        if req.done:
            return False
        if req in self.running:
            self.running.remove(req)
            self._free(req)
        else:
            try:
                self.waiting.remove(req)
            except ValueError:
                return False
            if req.num_blocks:
                self._free(req)
        self.counters.aborted += 1
        req.finished = -1.0
        return True

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    # --- one iteration ---------------------------------------------------------------------
    def step(self, now: float) -> Step:
        bs = self.block_size
        kv = self.kv
        budget = self.profile.max_num_batched_tokens
        running = self.running
        scheduled: list[tuple[SimRequest, int]] = []
        step = Step(start=now, end=now)

        preempted = step.preempted
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            n = req.prompt_len + req.num_generated - req.num_computed
            if n > budget:
                n = budget
            need = -(-(req.num_computed + n) // bs) - req.num_blocks
            if need > 0:
                victim = None
                while not kv.allocate(need):
                    victim = running.pop()  # the newest running sequence makes room
                    self._preempt(victim)
                    preempted.append(victim)
                    if victim is req:
                        break
                if victim is req:
                    break  # req was the newest; everything before it is scheduled
                req.private_blocks += need
            scheduled.append((req, n))
            budget -= n
            i += 1

        if not preempted:
            self._admit(now, budget, scheduled)

        prefill = decode = ctx = 0
        weighted = 0.0
        lora_factor = 1.0 + self.profile.lora_overhead
        for req, n in scheduled:
            if req.num_computed >= req.prompt_len and n == 1:
                decode += 1
                ctx += req.num_computed
            else:
                prefill += n
            weighted += n * lora_factor if req.lora else n
        if not scheduled:
            return step
        end = now + self.profile.step_time(weighted, ctx) * self.slow_factor
        step.end = end
        step.prefill_tokens = prefill
        step.decode_tokens = decode
        counters = self.counters
        counters.steps += 1
        counters.busy_time += end - now

        any_finished = False
        for req, n in scheduled:
            req.num_computed += n
            full = (req.num_computed if req.num_computed < req.prompt_len else req.prompt_len) // bs
            if full > req.scanned_blocks:
                self._commit(req, full)
                step.prefilled.append(req)
            if req.num_computed == req.prompt_len + req.num_generated:
                req.num_generated += 1
                counters.generation_tokens += 1
                if req.first_token is None:
                    req.first_token = end
                else:
                    step.itl.append(end - req.last_token)  # type: ignore[operator]  # set with first_token, a line below
                req.last_token = end
                step.emitted.append(req)
                if req.num_generated >= req.max_tokens:
                    req.finished = end
                    step.finished.append(req)
                    self._free(req)
                    counters.success += 1
                    any_finished = True
        if any_finished:
            self.running = [r for r in self.running if r.finished is None]
        return step

    def _preempt(self, req: SimRequest) -> None:
        self._free(req)
        req.num_computed = 0
        req.scanned_blocks = 0
        req.preemptions += 1
        self.counters.preemptions += 1
        self.waiting.appendleft(req)

    def _admit(self, now: float, budget: int, scheduled: list[tuple[SimRequest, int]]) -> None:
        bs = self.block_size
        kv = self.kv
        waiting = self.waiting
        running = self.running
        counters = self.counters
        while waiting and budget > 0 and len(running) < self.max_num_seqs:
            req = waiting[0]
            known = req.prompt_len + req.num_generated
            hashes = req.block_hashes
            hit = kv.match(hashes) if hashes else 0
            cap = (known - 1) // bs
            if hit > cap:
                hit = cap
            hit_tokens = hit * bs
            n = known - hit_tokens
            if n > budget:
                n = budget
            total = -(-(hit_tokens + n) // bs)
            shared = hashes[:hit]
            if not kv.acquire_prefix(shared, total - hit):
                break  # the KV cache is full: this request and all behind it wait
            waiting.popleft()
            req.held_hashes = list(shared)
            req.private_blocks = total - hit
            req.num_computed = hit_tokens
            req.scanned_blocks = hit
            if req.first_scheduled is None:
                req.first_scheduled = now
                req.cached_tokens = hit_tokens
                counters.prefix_queries += req.prompt_len
                counters.prefix_hits += hit_tokens
                counters.prompt_tokens += req.prompt_len
            running.append(req)
            scheduled.append((req, n))
            budget -= n

    def _commit(self, req: SimRequest, full: int) -> None:
        kv = self.kv
        hashes = req.block_hashes
        for idx in range(req.scanned_blocks, min(full, len(hashes))):
            if kv.commit(hashes[idx]):
                req.held_hashes.append(hashes[idx])
                req.private_blocks -= 1
        req.scanned_blocks = full

    def _free(self, req: SimRequest) -> None:
        self.kv.release(req.held_hashes, req.private_blocks)
        req.held_hashes = []
        req.private_blocks = 0

    # --- observation ---------------------------------------------------------------------
    def running_loras(self) -> list[str]:
        return sorted({r.lora for r in self.running if r.lora})

    def waiting_loras(self) -> list[str]:
        return sorted({r.lora for r in self.waiting if r.lora})
