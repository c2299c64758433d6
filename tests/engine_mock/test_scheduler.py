"""The continuous-batching step loop in simulated time, without a server."""

from __future__ import annotations

import pytest

from brix.prefix import block_hashes
from engine_mock.engine import Engine, RequestTooLarge
from engine_mock.kv_cache import KVCache
from engine_mock.model import SimRequest
from engine_mock.profiles import BUILTIN, Profile

A100 = BUILTIN["A100"]


def request(rid: int, prompt: int, out: int, first_token_id: int = 0, arrival: float = 0.0,
            lora: str | None = None) -> SimRequest:
    ids = list(range(first_token_id, first_token_id + prompt))
    return SimRequest(rid, prompt, out, block_hashes(ids, 16), arrival, lora=lora)


def drain(engine: Engine, now: float = 0.0, max_steps: int = 10_000) -> float:
    for _ in range(max_steps):
        if not engine.has_work():
            return now
        step = engine.step(now)
        assert not step.empty
        assert engine.kv.used_blocks <= engine.kv.num_blocks
        now = step.end
    raise AssertionError("engine did not drain")


def test_single_request_timeline_follows_the_profile() -> None:
    eng = Engine(A100, KVCache(100, 16))
    req = request(0, 100, 4)
    eng.add(req)
    first = eng.step(0.0)
    assert first.prefill_tokens == 100 and first.decode_tokens == 0
    assert first.end == pytest.approx(A100.step_time(100, 0))
    assert req.first_token == first.end and req.num_generated == 1
    end = drain(eng, first.end)
    assert req.num_generated == 4 and req.finished == end
    # each decode step reads the KV of every token before the one it computes
    assert end - first.end == pytest.approx(sum(A100.step_time(1, ctx) for ctx in (100, 101, 102)))
    assert eng.kv.used_blocks == 0
    assert eng.counters.generation_tokens == 4 and eng.counters.success == 1


def test_decode_step_time_grows_with_the_batch() -> None:
    def decode_step(batch: int) -> float:
        eng = Engine(A100, KVCache(1000, 16))
        for i in range(batch):
            eng.add(request(i, 100, 3, first_token_id=1000 * i))
        now = eng.step(0.0).end  # prefill of everyone
        step = eng.step(now)
        assert step.decode_tokens == batch
        return step.end - step.start

    assert decode_step(1) < decode_step(16) < decode_step(64)


def test_prefill_time_grows_with_uncached_tokens_and_a_prefix_hit_skips_it() -> None:
    def ttft(eng: Engine, req: SimRequest, now: float) -> float:
        req.arrival = now
        eng.add(req)
        drain(eng, now)
        assert req.first_token is not None
        return req.first_token - req.arrival

    eng = Engine(A100, KVCache(1000, 16))
    short = ttft(eng, request(0, 64, 1, first_token_id=50_000), 0.0)
    cold = ttft(eng, request(1, 1024, 1), 1.0)
    warm = ttft(eng, request(2, 1024, 1), 2.0)  # same tokens: all but the last block cached
    assert short < cold
    assert warm < cold / 5
    assert eng.counters.prefix_hits == 1008  # 63 of 64 blocks; the last token is always computed


def test_token_budget_splits_a_long_prefill_into_chunks() -> None:
    small = Profile(**{**A100.__dict__, "max_num_batched_tokens": 256})
    eng = Engine(small, KVCache(1000, 16))
    req = request(0, 1000, 2)
    eng.add(req)
    steps = []
    now = 0.0
    while req.first_token is None:
        step = eng.step(now)
        steps.append(step.prefill_tokens)
        now = step.end
    assert steps == [256, 256, 256, 232]


def test_requests_wait_when_kv_blocks_run_out_and_nothing_is_lost() -> None:
    eng = Engine(A100, KVCache(8, 16))
    reqs = [request(i, 40, 40, first_token_id=100 * i) for i in range(4)]
    for r in reqs:
        eng.add(r)
    eng.step(0.0)
    assert len(eng.running) == 2 and len(eng.waiting) == 2  # 3 blocks each at admission
    drain(eng)
    assert all(r.num_generated == 40 for r in reqs)
    assert reqs[3].first_scheduled is not None and reqs[3].first_scheduled > 0


def test_decode_overflow_preempts_the_newest_and_recomputes_it() -> None:
    eng = Engine(A100, KVCache(19, 16))
    reqs = [request(i, 100, 60, first_token_id=1000 * i) for i in range(3)]
    for r in reqs:
        eng.add(r)
    drain(eng)
    assert eng.counters.preemptions >= 1
    assert reqs[0].preemptions == 0  # the oldest keeps running; a newer one is recomputed
    assert sum(r.preemptions for r in reqs) == eng.counters.preemptions
    assert all(r.num_generated == 60 for r in reqs)
    assert eng.counters.generation_tokens == 180
    assert eng.kv.used_blocks == 0


def test_max_num_seqs_caps_the_batch() -> None:
    eng = Engine(A100, KVCache(1000, 16), max_num_seqs=3)
    for i in range(5):
        eng.add(request(i, 20, 5, first_token_id=100 * i))
    eng.step(0.0)
    assert len(eng.running) == 3 and len(eng.waiting) == 2


def test_lora_tokens_cost_more() -> None:
    def prefill_time(lora: str | None) -> float:
        eng = Engine(A100, KVCache(1000, 16))
        eng.add(request(0, 2000, 1, lora=lora))
        step = eng.step(0.0)
        return step.end - step.start

    assert prefill_time("adapter") > prefill_time(None) * 1.05


def test_abort_frees_blocks_and_request_too_large_is_refused() -> None:
    eng = Engine(A100, KVCache(10, 16))
    req = request(0, 100, 10)
    eng.add(req)
    eng.step(0.0)
    assert eng.kv.used_blocks > 0
    assert eng.abort(req)
    assert eng.kv.used_blocks == 0 and not eng.has_work()
    with pytest.raises(RequestTooLarge):
        eng.add(request(1, 150, 20))


def test_simulation_is_deterministic() -> None:
    def run() -> list[float]:
        eng = Engine(A100, KVCache(30, 16))
        reqs = [request(i, 30 + 7 * i, 20 + i, first_token_id=(i % 3) * 10) for i in range(12)]
        for r in reqs:
            eng.add(r)
        drain(eng)
        return [r.finished or 0.0 for r in reqs]

    assert run() == run()


def test_a_long_prompt_reports_each_chunks_blocks_before_its_first_token() -> None:
    """A prompt longer than a step's token budget is prefilled in chunks; each chunk's full blocks are
    reported in `Step.prefilled` when computed (their KV can be saved to a pool then), not only at
    the first token."""
    budget = A100.max_num_batched_tokens
    eng = Engine(A100, KVCache(budget // 4, 16))
    req = request(0, budget * 2 + 40, 2)
    eng.add(req)
    first = eng.step(0.0)
    assert first.prefilled == [req] and req.scanned_blocks == budget // 16 and req.first_token is None
    second = eng.step(first.end)
    assert second.prefilled == [req] and req.scanned_blocks == budget * 2 // 16 and req.first_token is None
    third = eng.step(second.end)
    assert third.prefilled == [req] and req.scanned_blocks == len(req.block_hashes) and req.first_token == third.end
    assert eng.step(third.end).prefilled == []  # decode steps complete no prompt block
