"""brix.vllm_metrics.sample_value: how the autoscaler reads one series from an engine's (or any
exporter's) /metrics page, with the same scanner and label reader as the gateway's parser."""

from __future__ import annotations

from brix.vllm_metrics import parse_vllm_metrics, sample_value

PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3.0
vllm:num_requests_running{model_name="b"} 4.0
vllm:num_requests_running_total{model_name="a"} 100.0
vllm:num_requests_waiting{model_name="a"} NaN
brix_gateway_held_requests{model="say \\"hi\\""} 2
brix_gateway_held_requests{model="other"} 5
"""


def test_sums_every_series_of_the_name_and_nothing_that_only_starts_with_it() -> None:
    assert sample_value(PAGE, "vllm:num_requests_running") == 7.0


def test_labels_filter_the_series() -> None:
    assert sample_value(PAGE, "vllm:num_requests_running", {"model_name": "b"}) == 4.0
    assert sample_value(PAGE, "brix_gateway_held_requests", {"model": 'say "hi"'}) == 2.0
    assert sample_value(PAGE, "vllm:num_requests_running", {"model_name": "c"}) is None


def test_a_missing_or_nan_series_is_no_sample_not_zero() -> None:
    assert sample_value(PAGE, "vllm:num_requests_waiting") is None
    assert sample_value(PAGE, "vllm:gpu_cache_usage_perc") is None
    assert sample_value("", "x") is None


def test_the_gateway_snapshot_and_the_autoscaler_read_the_same_numbers() -> None:
    m = parse_vllm_metrics(PAGE)
    assert m.running == sample_value(PAGE, "vllm:num_requests_running")
