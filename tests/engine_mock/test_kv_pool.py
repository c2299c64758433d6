"""engine-mock --kv-pool against a real `brix kvcache serve`: a prompt one engine computed is loaded
from the pool by another (fewer prefill tokens computed, a shorter TTFT that still includes the
modelled transfer), and a pool that is down costs nothing but the hits."""

from __future__ import annotations

import json
import urllib.request

from brix import procs

PROMPT = " ".join(f"w{i % 89}q{i % 7}" for i in range(2400))


def start_pool(brix_process) -> int:  # type: ignore[no-untyped-def]
    port, http = procs.free_port(), procs.free_port()
    brix_process("kvcache", "kvcache", "serve", "--port", str(port), "--http-port", str(http), "--capacity", "64MiB",
                 ready_url=f"http://127.0.0.1:{http}/readyz")
    return port


def start_engine(brix_process, name: str, pool_url: str) -> str:  # type: ignore[no-untyped-def]
    port = procs.free_port()
    brix_process(name, "engine-mock", "--port", str(port), "--model", "m", "--gpu-type", "A10", "--speed", "2",
                 "--max-model-len", "32768", "--kv-pool", pool_url, ready_url=f"http://127.0.0.1:{port}/health")
    return f"http://127.0.0.1:{port}"


def complete(url: str) -> dict:  # type: ignore[type-arg]
    req = urllib.request.Request(url + "/v1/completions", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"model": "m", "prompt": PROMPT, "max_tokens": 2}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def metrics(url: str) -> dict[str, float]:
    out = {}
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#") and "{" in line:
                out[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def wait_written(url: str, blocks: int) -> None:
    import time
    deadline = time.monotonic() + 10
    while metrics(url)["engine_mock_kv_pool_blocks_written_total"] < blocks:
        assert time.monotonic() < deadline, "the write-back never reached the pool"
        time.sleep(0.05)


def test_a_second_engine_loads_the_prefix_from_the_pool(brix_process) -> None:  # type: ignore[no-untyped-def]
    pool = f"kvcache://127.0.0.1:{start_pool(brix_process)}"
    a, b = start_engine(brix_process, "a", pool), start_engine(brix_process, "b", pool)
    prompt_tokens = complete(a)["usage"]["prompt_tokens"]
    full_blocks = prompt_tokens // 16
    wait_written(a, full_blocks)
    complete(b)
    ma, mb = metrics(a), metrics(b)
    from_pool = mb["engine_mock_kv_pool_prefill_tokens_total"]
    assert from_pool == ((prompt_tokens - 1) // 16) * 16
    assert ma["engine_mock_kv_pool_prefill_tokens_total"] == 0
    # b computed only the tail; a computed everything
    assert mb["vllm:prefix_cache_hits_total"] == from_pool
    ttft_a = ma["vllm:time_to_first_token_seconds_sum"]
    ttft_b = mb["vllm:time_to_first_token_seconds_sum"]
    transfer = mb["engine_mock_kv_pool_transfer_seconds_total"]
    # A10 prefill: ~216 us per token; the transfer: 8 MiB per block at 12.5 GB/s (~42 us per token)
    assert transfer == (from_pool // 16) * 16 * 512 * 1024 / 12.5e9
    # the wall time of the lookup counts too (x speed), so on a loaded machine only the order is certain
    assert transfer <= ttft_b < ttft_a
    print(f"\nTTFT (simulated) computed {ttft_a * 1000:.0f} ms, from the pool {ttft_b * 1000:.0f} ms "
          f"(transfer {transfer * 1000:.0f} ms)")


def test_a_pool_that_is_down_costs_only_the_hits(brix_process) -> None:  # type: ignore[no-untyped-def]
    a = start_engine(brix_process, "a", f"kvcache://127.0.0.1:{procs.free_port()}")
    for _ in range(2):
        assert complete(a)["usage"]["completion_tokens"] == 2
    m = metrics(a)
    assert m["engine_mock_kv_pool_prefill_tokens_total"] == 0 and m["engine_mock_kv_pool_blocks_written_total"] == 0
    assert m["vllm:prefix_cache_hits_total"] > 0  # the local prefix cache still works
