"""parse_vllm_metrics turns a vLLM /metrics page into the numbers strategies read."""

from __future__ import annotations

import pytest

from brix.vllm_metrics import parse_vllm_metrics

PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3.0
vllm:num_requests_waiting{model_name="m"} 7.0
vllm:kv_cache_usage_perc{model_name="m"} 0.42
vllm:gpu_cache_usage_perc{model_name="m"} 0.40
vllm:cpu_cache_usage_perc{model_name="m"} 0.0
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora,chat, lora",waiting_lora_adapters="x"} 1.7e+09
vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1.6e+09
vllm:prefix_cache_queries_total{model_name="m"} 1000.0
vllm:prefix_cache_hits_total{model_name="m"} 250.0
vllm:prompt_tokens_total{model_name="m"} 5000.0
vllm:generation_tokens_total{model_name="m"} 800.0
vllm:request_success_total{finished_reason="length",model_name="m"} 6.0
vllm:request_success_total{finished_reason="stop",model_name="m"} 4.0
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 2.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 1.5
vllm:time_to_first_token_seconds_count{model_name="m"} 10.0
vllm:request_queue_time_seconds_sum{model_name="m"} 0.5
vllm:request_queue_time_seconds_count{model_name="m"} 10.0
vllm:cache_config_info{block_size="16",num_gpu_blocks="512"} 1.0
some_other_metric 12
"""


def test_parses_gauges_counters_histogram_sums_and_labels():
    m = parse_vllm_metrics(PAGE, now=5.0)
    assert (m.running, m.waiting) == (3.0, 7.0)
    assert m.kv_cache_usage == pytest.approx(0.42) and m.gpu_cache_usage == pytest.approx(0.40)
    assert (m.prefix_cache_hits, m.prefix_cache_queries) == (250.0, 1000.0)
    assert m.requests_finished == 10.0          # summed over finished_reason series
    assert m.avg_prompt_tokens == 500.0 and m.avg_generation_tokens == 80.0
    assert (m.ttft_sum, m.ttft_count) == (1.5, 10.0)
    # the newest lora_requests_info series wins; adapters are split and stripped
    assert m.running_lora_adapters == frozenset({"sql-lora", "chat", "lora"})
    assert m.waiting_lora_adapters == frozenset({"x"}) and m.max_lora == 4
    assert (m.num_gpu_blocks, m.block_size) == (512, 16)
    assert m.scraped_at == 5.0


def test_rates_come_from_the_previous_scrape():
    before = parse_vllm_metrics(PAGE, now=5.0)
    after = parse_vllm_metrics(PAGE.replace("5000.0", "5600.0").replace("800.0", "900.0"), before, now=5.5)
    assert after.prompt_tokens_per_s == pytest.approx(1200.0)
    assert after.generation_tokens_per_s == pytest.approx(200.0)


def test_garbage_and_empty_pages_give_defaults():
    m = parse_vllm_metrics("vllm:num_requests_running{x=\"1\"} notanumber\nvllm:num_requests_waiting\n\n")
    assert m.running == 0.0 and m.waiting == 0.0
