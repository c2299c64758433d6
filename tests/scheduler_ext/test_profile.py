"""`brix profile`: SLOs read from an engine's vLLM histograms, the per-bucket rate search, and the
AIBrix-format profile it writes, against a real engine-mock."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from brix import procs
from scheduler_ext.profiling import Hist, RateSearch, aibrix_slos, parse_histograms

PAGE = """# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m"} 50
vllm:time_to_first_token_seconds_bucket{le="1.0",model_name="m"} 90
vllm:time_to_first_token_seconds_bucket{le="2.5",model_name="m"} 99
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 100
vllm:time_to_first_token_seconds_sum{model_name="m"} 70.0
vllm:time_to_first_token_seconds_count{model_name="m"} 100
"""


def test_percentiles_from_histogram_differences() -> None:
    after = parse_histograms(PAGE, {"vllm:time_to_first_token_seconds"})["vllm:time_to_first_token_seconds"]
    assert after.quantile(0.5) == 0.5 and after.quantile(0.9) == 1.0 and after.quantile(0.99) == 2.5
    assert after.quantile(0.7) == pytest.approx(0.75)          # linear inside the (0.5, 1.0] bucket
    assert math.isinf(after.quantile(0.995))                    # past the last finite bound: fails any SLO
    before = Hist(((0.5, 40.0), (1.0, 40.0), (2.5, 40.0), (math.inf, 40.0)), 8.0, 40.0)
    trial = after.minus(before)                                 # the trial's own 60 requests
    assert trial.count == 60 and trial.mean() == pytest.approx(62 / 60)
    assert aibrix_slos({"ttft_p99": 2.5, "e2e_p99": 30.0}) == {"percentile": 99, "ttft": 2.5, "e2e": 30.0}


def test_the_rate_search_finds_the_highest_passing_rate() -> None:
    search = RateSearch(start_rps=1.0, precision=0.05)
    while (rate := search.next_rate()) is not None:
        search.report(rate, rate <= 6.3)                        # the engine meets the SLO up to 6.3 req/s
    assert 6.3 / 1.05 <= search.passed <= 6.3
    assert len(search.tried) <= 10
    never = RateSearch(start_rps=1.0, min_rps=0.25)
    while (rate := never.next_rate()) is not None:
        never.report(rate, False)
    assert never.passed == 0.0 and [r for r, _ in never.tried] == [1.0, 0.5, 0.25]


def test_a_trial_lasts_long_enough_for_an_overload_to_show() -> None:
    """A rate over capacity shows in the latencies only once the batch has filled the KV cache: a
    trial's arrivals span trial_seconds and at least `settle` lone-request e2e latencies, whatever
    the rate (the old 200-request cap ended an 85 req/s trial after 2.4 s, and engine-mock's A100
    'served' 85 req/s of 256-token prompts, twice what its prefill compute allows)."""
    from scheduler_ext.profile_bench import ProfileError, ProfileSettings, trial_requests

    s = ProfileSettings(engine="http://e", gpu_type="A100", slo={"ttft_p99": 2.5}, cost=3.67, inputs=(256,),
                        outputs=(16,), out=Path("p.json"), trial_seconds=30.0, settle=8.0)
    assert trial_requests(s, 85.0, e2e_alone=0.2) == 85 * 30            # 30 s of arrivals, not 200 requests
    assert trial_requests(s, 2.0, e2e_alone=10.0) == 160                 # 8 x 10 s of arrivals
    assert trial_requests(s, 0.1, e2e_alone=0.2) == s.min_requests
    with pytest.raises(ProfileError, match="raise --max-requests"):
        trial_requests(s, 500.0, e2e_alone=0.2)


def test_profile_of_an_engine_mock(brix_process, tmp_path: Path) -> None:
    port = procs.free_port()
    brix_process("engine", "engine-mock", "--port", str(port), "--model", "m", "--gpu-type", "A100", "--speed", "20",
                 ready_url=f"http://127.0.0.1:{port}/health")
    out = tmp_path / "a100.json"
    run = subprocess.run(procs.brix_argv(
        "profile", "--engine", f"http://127.0.0.1:{port}", "--gpu-type", "A100", "--slo", "ttft_p99=0.1s",
        "--buckets", "16/256,2048", "--time-scale", "20", "--trial-seconds", "5", "--min-requests", "10",
        "--precision", "0.3", "--out", str(out), "--log-level", "warning"), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_text())
    assert doc["gpu"] == "A100" and doc["cost"] == 3.67 and doc["model"] == "m"
    assert doc["indexes"] == [[16], [256, 2048]] and doc["slos"] == {"percentile": 99, "ttft": 0.1}
    short, long_ = doc["tputs"][0]
    # 256 prompt tokens take ~22 ms of prefill on engine-mock's A100: many per second meet 100 ms;
    # 2048 take ~180 ms, so even a request alone misses the SLO and the cell is 0 (never assigned)
    assert short > 5.0 and long_ == 0.0
    assert doc["measured"][0][0]["ttft_p99"] <= 0.1 and doc["benchmark"]["seconds"] > 0
    assert "bucket output 16 x input 2048: 0 req/s (a request alone misses the SLO" in run.stderr


def test_bad_flags_say_what_to_fix(tmp_path: Path) -> None:
    def brix(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(procs.brix_argv("profile", *args), capture_output=True, text=True, timeout=60)
    base = ["--engine", "http://127.0.0.1:9", "--out", str(tmp_path / "p.json")]
    bad = brix(*base, "--gpu-type", "L4", "--slo", "ttft_p99=1s")
    assert bad.returncode == 2 and "--cost: give the price per hour of one L4 replica" in bad.stderr
    bad = brix(*base, "--gpu-type", "A10", "--slo", "ttft=1s")
    assert bad.returncode == 2 and "--slo: bad entry 'ttft=1s'" in bad.stderr
    bad = brix(*base, "--gpu-type", "A10", "--slo", "ttft_p99=1s", "--buckets", "16,64")
    assert bad.returncode == 2 and "COMPLETION_TICKS/PROMPT_TICKS" in bad.stderr
    down = brix(*base, "--gpu-type", "A10", "--slo", "ttft_p99=1s")
    assert down.returncode == 1 and "is the engine running at --engine?" in down.stderr
