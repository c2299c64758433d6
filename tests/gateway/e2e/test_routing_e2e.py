"""Strategies end to end: the gateway's choice under real engine_mock state."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter

import openai

SYSTEM = "You are a meticulous assistant for GPU cluster operators. " * 30


def routed(c: openai.OpenAI, strategy: str | None = None, **kwargs) -> str:  # type: ignore[no-untyped-def]
    headers = {"routing-strategy": strategy} if strategy else {}
    headers.update(kwargs.pop("headers", {}))
    out = c.chat.completions.with_raw_response.create(model=kwargs.pop("model", "mock-llm"), max_tokens=1,
                                                      extra_headers=headers, **kwargs)
    return out.headers["x-brix-endpoint"]


def test_prefix_cache_aware_keeps_a_shared_prefix_on_one_engine(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(3)
    url = start_gateway([e.url for e in engines])
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    chosen = Counter(routed(c, "prefix-cache-aware", messages=[{"role": "system", "content": SYSTEM},
                                                              {"role": "user", "content": f"q{i}"}])
                     for i in range(8))
    assert len(chosen) == 1
    engine = next(iter(chosen))
    # the engine really served the repeats from its prefix cache
    with urllib.request.urlopen(engine + "/metrics", timeout=5) as resp:
        hits = [ln for ln in resp.read().decode().splitlines() if ln.startswith("vllm:prefix_cache_hits_total")]
    assert float(hits[0].rsplit(" ", 1)[1]) > 0
    # the gateway counts its decisions' prefix matches
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'brix_gateway_prefix_blocks_total{kind="matched",model="mock-llm"}' in text


def test_random_and_least_request_spread(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(3)
    url = start_gateway([e.url for e in engines])
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    for strategy in ("random", "least-request", "power-of-two"):
        seen = {routed(c, strategy, messages=[{"role": "user", "content": SYSTEM}]) for _ in range(30)}
        assert len(seen) == 3, strategy


def test_session_affinity_sticks(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(3)
    url = start_gateway([e.url for e in engines])
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    for session in ("alice", "bob", "carol"):
        seen = {routed(c, "session-affinity", messages=[{"role": "user", "content": "hi"}],
                       headers={"x-session-id": session}) for _ in range(5)}
        assert len(seen) == 1, session


def test_lora_adapters_are_learnt_and_routed_only_where_loaded(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(2)
    url = start_gateway([e.url for e in engines])
    req = urllib.request.Request(engines[1].url + "/v1/load_lora_adapter",
                                 data=json.dumps({"lora_name": "sql-lora", "lora_path": "/adapters/sql"}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5)
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    deadline = time.monotonic() + 5
    while "sql-lora" not in [m.id for m in c.models.list()]:
        assert time.monotonic() < deadline, "the adapter never showed up in the gateway's /v1/models"
        time.sleep(0.1)
    for _ in range(5):
        assert routed(c, "lora-affinity,least-request", model="sql-lora",
                      messages=[{"role": "user", "content": "select"}]) == engines[1].url


def test_strategy_from_config_and_header_override(start_engines, start_gateway, tmp_path):  # type: ignore[no-untyped-def]
    engines = start_engines(2)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("models:\n  mock-llm:\n    strategy: session-affinity\n")
    url = start_gateway([e.url for e in engines], "--config", str(cfg))
    with urllib.request.urlopen(url + "/metrics", timeout=5):
        pass
    c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    routed(c, None, messages=[{"role": "user", "content": "hi"}], headers={"x-session-id": "s"})
    routed(c, "random", messages=[{"role": "user", "content": "hi"}])
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'strategy="session-affinity"' in text and 'strategy="random"' in text


def test_least_kv_cache_and_least_gpu_cache_avoid_a_loaded_engine(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    import threading

    engines = start_engines(2, "--kv-blocks", "400")
    url = start_gateway([e.url for e in engines])
    busy = engines[0].url
    urllib.request.urlopen(urllib.request.Request(busy + "/admin/fault", data=b'{"slow_factor": 50}',
                                                  headers={"Content-Type": "application/json"}), timeout=5)
    # load the busy engine directly (not through the gateway): its KV cache fills, the gateway sees it
    # only through the scraped vllm:kv_cache_usage_perc
    stop = threading.Event()

    def hog(i: int) -> None:
        body = json.dumps({"model": "mock-llm", "prompt": f"{i} " + SYSTEM, "max_tokens": 400, "stream": True}).encode()
        req = urllib.request.Request(busy + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            while not stop.is_set() and resp.read(64):
                pass

    threads = [threading.Thread(target=hog, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    try:
        def usage() -> float:
            with urllib.request.urlopen(busy + "/metrics", timeout=5) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith("vllm:kv_cache_usage_perc"):
                        return float(line.rsplit(" ", 1)[1])
            return 0.0

        deadline = time.monotonic() + 10
        while usage() < 0.1:
            assert time.monotonic() < deadline, "the hog requests never filled the busy engine's KV cache"
            time.sleep(0.1)
        time.sleep(0.3)   # a few scrapes at 50 ms
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
        for strategy in ("least-kv-cache", "least-gpu-cache"):
            picks = {routed(c, strategy, messages=[{"role": "user", "content": "hi"}]) for _ in range(5)}
            assert picks == {engines[1].url}, strategy
    finally:
        stop.set()
