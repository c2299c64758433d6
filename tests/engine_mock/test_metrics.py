"""/metrics: vLLM names, values consistent with the requests served, prefix hits lower TTFT."""

from __future__ import annotations

import threading
import time

import openai

from tests.engine_mock.conftest import EngineUnderTest, metric


def test_counters_and_histograms_match_the_requests_served(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="x")
    prompt_total = completion_total = 0
    for i in range(5):
        out = client.completions.create(model="m1", prompt=f"request number {i} " * (i + 1), max_tokens=3 + i)
        assert out.usage is not None
        prompt_total += out.usage.prompt_tokens
        completion_total += out.usage.completion_tokens
    s = engine.metrics()
    assert metric(s, "vllm:prompt_tokens_total") == prompt_total
    assert metric(s, "vllm:generation_tokens_total") == completion_total
    assert metric(s, "vllm:prefix_cache_queries_total") == prompt_total
    assert s['vllm:request_success_total{engine="0",finished_reason="length",model_name="m1"}'] == 5
    for name in ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds",
                 "request_prefill_time_seconds", "request_decode_time_seconds", "time_per_output_token_seconds"):
        assert metric(s, f"vllm:{name}_count") == 5, name
    assert metric(s, "vllm:request_prompt_tokens_sum") == prompt_total
    assert metric(s, "vllm:request_generation_tokens_sum") == completion_total
    # every output token after the first has one inter-token gap
    assert metric(s, "vllm:inter_token_latency_seconds_count") == completion_total - 5
    e2e, ttft = metric(s, "vllm:e2e_request_latency_seconds_sum"), metric(s, "vllm:time_to_first_token_seconds_sum")
    assert e2e > ttft > 0
    assert s['vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="m1"}'] == 5
    # the per-request series vLLM v1 has: RUNNING time, n, max_tokens, longest sequence
    assert metric(s, "vllm:request_inference_time_seconds_count") == 5
    assert metric(s, "vllm:request_params_n_sum") == 5
    assert metric(s, "vllm:request_params_max_tokens_sum") == sum(3 + i for i in range(5))
    assert metric(s, "vllm:request_max_num_generation_tokens_sum") == completion_total
    iteration_les = [k.split('le="')[1].split('"')[0] for k in s if k.startswith("vllm:iteration_tokens_total_bucket")]
    assert iteration_les == ["1.0", "8.0", "16.0", "32.0", "64.0", "128.0", "256.0", "512.0", "1024.0", "2048.0",
                             "4096.0", "8192.0", "16384.0", "+Inf"]
    # v0-only series stay off unless --v0-metrics
    assert not any(k.startswith(("vllm:num_requests_swapped", "vllm:cpu_cache_usage_perc")) for k in s)
    # idle engine: nothing running or waiting, no KV blocks held
    assert metric(s, "vllm:num_requests_running") == 0
    assert metric(s, "vllm:num_requests_waiting") == 0
    assert metric(s, "vllm:kv_cache_usage_perc") == 0 == metric(s, "vllm:gpu_cache_usage_perc")


def test_prefix_hit_lowers_simulated_time_to_first_token(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="x")
    shared = "You are a careful assistant. Answer in one line. " * 40  # ~500 tokens

    def ttft_of(prompt: str) -> float:
        before = metric(engine.metrics(), "vllm:time_to_first_token_seconds_sum")
        client.completions.create(model="m1", prompt=prompt, max_tokens=1)
        return metric(engine.metrics(), "vllm:time_to_first_token_seconds_sum") - before

    cold = ttft_of(shared + "Question one?")
    warm = ttft_of(shared + "Question two?")
    other_cold = ttft_of("A different system prompt entirely. " * 55 + "Question three?")
    s = engine.metrics()
    assert metric(s, "vllm:prefix_cache_hits_total") >= 400
    assert warm < cold / 2
    assert other_cold > warm * 2


def test_cache_config_info_carries_block_geometry(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--kv-blocks", "300", "--block-size", "32")
    info = [k for k in eng.metrics() if k.startswith("vllm:cache_config_info")]
    assert len(info) == 1
    assert 'num_gpu_blocks="300"' in info[0] and 'block_size="32"' in info[0]


def test_requests_queue_when_the_kv_cache_is_full(start_engine) -> None:  # type: ignore[no-untyped-def]
    # 8 blocks of 16 tokens; each request holds 3 prompt blocks at admission and grows to 5
    eng: EngineUnderTest = start_engine("--kv-blocks", "8", "--block-size", "16", speed="1")
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    results: list[int] = []

    def send(i: int) -> None:
        out = client.completions.create(model="m1", prompt=" ".join(f"w{i}x{j}" for j in range(40)),
                                        max_tokens=40)
        results.append(out.usage.completion_tokens if out.usage else 0)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    seen_waiting = seen_usage = 0.0
    deadline = time.monotonic() + 20
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        s = eng.metrics()
        seen_waiting = max(seen_waiting, metric(s, "vllm:num_requests_waiting"))
        seen_usage = max(seen_usage, metric(s, "vllm:kv_cache_usage_perc"))
        time.sleep(0.02)
    for t in threads:
        t.join(30)
    assert results == [40] * 4
    assert seen_waiting >= 1
    assert seen_usage >= 0.75
    s = eng.metrics()
    assert metric(s, "vllm:request_queue_time_seconds_sum") > 0
    assert metric(s, "vllm:num_requests_waiting") == 0


def test_gpu_profiles_change_simulated_latency(start_engine, shared_data) -> None:  # type: ignore[no-untyped-def]
    prompt = "profile comparison " * 150

    def ttft(eng: EngineUnderTest) -> float:
        openai.OpenAI(base_url=eng.v1, api_key="x").completions.create(model="m1", prompt=prompt, max_tokens=1)
        return metric(eng.metrics(), "vllm:time_to_first_token_seconds_sum")

    h100 = ttft(start_engine("--gpu-type", "H100"))
    a10 = ttft(start_engine("--gpu-type", "A10"))
    a40 = ttft(start_engine("--profile", str(shared_data / "profiles" / "simulator-llama2-7b-a40.json")))
    # ~750 prompt tokens: compute bound, 27 us/token on H100, 216 on A10, 222 fitted for the AIBrix A40
    assert a10 > 3 * h100
    assert a40 > 3 * h100


def test_decode_overflow_preempts_and_every_request_still_completes(start_engine) -> None:  # type: ignore[no-untyped-def]
    # 12 blocks: three 40-token prompts are admitted (3 blocks each) but each grows to 7 blocks
    eng: EngineUnderTest = start_engine("--kv-blocks", "12", "--block-size", "16", speed="5")
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    results: list[int] = []

    def send(i: int) -> None:
        out = client.completions.create(model="m1", prompt=" ".join(f"p{i}q{j}" for j in range(40)), max_tokens=60)
        results.append(out.usage.completion_tokens if out.usage else 0)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [60, 60, 60]
    s = eng.metrics()
    assert metric(s, "vllm:num_preemptions_total") >= 1
    assert metric(s, "vllm:generation_tokens_total") == 180
    assert metric(s, "vllm:kv_cache_usage_perc") == 0


def test_the_exposition_is_valid_prometheus_text_even_for_odd_model_names() -> None:
    # render() writes the text format itself: prometheus-client's own parser must read it back whole
    import random

    from prometheus_client.parser import text_string_to_metric_families

    from brix.prefix import block_hashes
    from engine_mock.engine import Engine
    from engine_mock.kv_cache import KVCache
    from engine_mock.metrics import EngineMetrics
    from engine_mock.model import SimRequest
    from engine_mock.profiles import builtin

    odd = 'my "model"\\v1\nnew'
    eng = Engine(builtin("A100"), KVCache(64, 16), 32)
    metrics = EngineMetrics(eng, odd, 4, 4096, lambda: 0.0)
    rng, now = random.Random(3), 0.0
    for i in range(60):
        ids = [rng.randrange(50) for _ in range(rng.randrange(8, 200))]
        eng.add(SimRequest(rid=i, prompt_len=len(ids), max_tokens=rng.randrange(1, 9),
                           block_hashes=block_hashes(ids, 16), arrival=now, lora=None, stream=False))
        while eng.has_work():
            step = eng.step(now)
            now = step.end if not step.empty else now + 0.01
            metrics.record(step)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert families["vllm:num_requests_running"].samples[0].labels == {"engine": "0", "model_name": odd}
    assert families["vllm:request_success"].samples[0].value == 60
    ttft = families["vllm:time_to_first_token_seconds"]
    buckets = [s.value for s in ttft.samples if s.name.endswith("_bucket")]
    count = next(s.value for s in ttft.samples if s.name.endswith("_count"))
    assert buckets == sorted(buckets) and buckets[-1] == count == 60  # cumulative, +Inf = count


def test_v0_metrics_flag_adds_the_v0_only_series(start_engine) -> None:  # type: ignore[no-untyped-def]
    s = start_engine("--v0-metrics").metrics()
    assert metric(s, "vllm:num_requests_swapped") == 0
    assert metric(s, "vllm:cpu_cache_usage_perc") == 0
