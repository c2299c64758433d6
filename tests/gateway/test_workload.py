"""The gateway's workload window (pure): a known request mix gives the histogram the GPU-mix
optimizer reads, per model and power-of-two token bucket, over a sliding window."""

from __future__ import annotations

import pytest

from brix.token_buckets import bucket_of, grid_index, parse_ticks
from gateway.workload import WorkloadCollector, WorkloadWindow


def test_buckets_round_up_to_a_power_of_two() -> None:
    assert [bucket_of(n) for n in (0, 1, 2, 3, 100, 128, 129, 4000)] == [1, 1, 2, 4, 128, 128, 256, 4096]
    ticks = [128, 512, 2048]
    assert [grid_index(n, ticks) for n in (1, 128, 129, 512, 2000, 9000)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="strictly increasing"):
        parse_ticks("512,128", "--buckets")


def test_a_known_mix_gives_its_rates_per_bucket() -> None:
    w = WorkloadWindow(started=0.0, window_s=60.0)
    # 60 s of traffic: every second 3 short chats and, every other second, one long summary
    for t in range(100, 160):
        for k in range(3):
            w.record("llama", 100 + k, 5, t + 0.1 * k)
        if t % 2 == 0:
            w.record("llama", 3000, 200, t + 0.5)
    w.record("other", 10, 10, 159.0)
    rates = w.rates(160.0)
    assert rates["llama"] == pytest.approx({(128, 8): 3.0, (4096, 256): 0.5}, rel=0.02)
    assert rates["other"] == pytest.approx({(16, 16): 1 / 60}, rel=0.02)
    doc = w.document(160.0)
    assert doc["models"]["llama"]["rps"] == pytest.approx(3.5, rel=0.02)  # type: ignore[index]
    cells = {(c["prompt_tokens"], c["completion_tokens"]) for c in doc["models"]["llama"]["cells"]}  # type: ignore[index]
    assert cells == {(128, 8), (4096, 256)}


def test_old_requests_leave_the_window_and_a_fresh_gateway_does_not_read_low() -> None:
    w = WorkloadWindow(started=0.0, window_s=60.0)
    for t in range(10):                      # 10 s after start: 2 requests/s so far
        w.record("m", 500, 50, t)
        w.record("m", 500, 50, t + 0.5)
    assert w.rates(10.0)["m"][(512, 64)] == pytest.approx(2.0)
    assert w.rates(65.5)["m"][(512, 64)] == pytest.approx(8 / 60, rel=0.02)   # seconds 0-5 have left the window
    assert w.rates(75.0) == {}                                          # nothing in the last minute


def test_the_rates_are_exported_as_a_gauge() -> None:
    w = WorkloadWindow(started=0.0, window_s=10.0)
    for t in range(10):
        w.record("m", 1000, 100, t + 0.5)
    (family,) = list(WorkloadCollector(w, lambda: 10.0).collect())
    assert family.name == "brix_gateway_workload_requests_per_second"
    (sample,) = family.samples
    assert sample.labels == {"model": "m", "prompt_tokens": "1024", "completion_tokens": "128"}
    assert sample.value == pytest.approx(1.0)
