"""Scale from zero at the gateway: requests for a model with no Ready endpoint wait (--hold-timeout),
show up as brix_gateway_held_requests{model}, and go through once an endpoint is back, or get a 503
that says why after the timeout."""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request

import openai
import pytest

from brix import procs


def held(url: str, model: str = "mock-llm") -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(f'brix_gateway_held_requests{{model="{model}"}}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_not_ready(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/readyz", timeout=2)
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                return
        time.sleep(0.05)
    raise AssertionError("the gateway still reports a ready endpoint after the engine stopped")


def engine_argv(port: int) -> list[str]:
    return ["engine-mock", "--port", str(port), "--model", "mock-llm", "--speed", "20"]


def test_a_held_request_completes_once_an_endpoint_is_ready(launcher, start_gateway):  # type: ignore[no-untyped-def]
    port = procs.free_port()
    engine = launcher._start("engine", engine_argv(port), f"http://127.0.0.1:{port}/health")
    url = start_gateway([f"http://127.0.0.1:{port}"], "--hold-timeout", "30")
    engine.stop()
    wait_not_ready(url)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.completions.create, model="mock-llm", prompt="wake up", max_tokens=2)
        deadline = time.monotonic() + 10
        while held(url) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held(url) == 1, "the waiting request is not exported as held demand"
        assert not future.done()
        launcher._start("engine-again", engine_argv(port), f"http://127.0.0.1:{port}/health")
        out = future.result(30)
    assert out.choices[0].text is not None
    assert held(url) == 0


def test_a_held_request_gets_a_clear_503_after_the_timeout(launcher, start_gateway):  # type: ignore[no-untyped-def]
    port = procs.free_port()
    engine = launcher._start("engine", engine_argv(port), f"http://127.0.0.1:{port}/health")
    url = start_gateway([f"http://127.0.0.1:{port}"], "--hold-timeout", "1")
    engine.stop()
    wait_not_ready(url)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        client.completions.create(model="mock-llm", prompt="x", max_tokens=1)
    assert info.value.status_code == 503
    assert time.monotonic() - started >= 1.0
    assert "--hold-timeout" in str(info.value) and "mock-llm" in str(info.value)
    assert held(url) == 0


def test_an_unknown_model_is_not_held(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines], "--hold-timeout", "30")
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20)
    started = time.monotonic()
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert time.monotonic() - started < 5
