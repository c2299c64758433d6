"""/tokenize, /v1/embeddings, /version, and aborting a request whose client went away."""

from __future__ import annotations

import time

import openai
import pytest

from brix.tokenizer import token_ids, tokenize
from tests.engine_mock.conftest import EngineUnderTest, metric
from tests.engine_mock.plain_http import get, post


def test_tokenize_uses_the_shared_tokenizer(engine: EngineUnderTest) -> None:
    status, body = post(engine.url + "/tokenize", {"model": "m1", "prompt": "Hello, world", "return_token_strs": True})
    assert status == 200
    assert body["tokens"] == token_ids("Hello, world") and body["count"] == 5
    assert body["token_strs"] == tokenize("Hello, world")
    status, body = post(engine.url + "/tokenize", {"messages": [{"role": "user", "content": "hi"}]})
    assert body["count"] == len(token_ids("<|user|>\nhi\n<|assistant|>\n"))
    assert post(engine.url + "/tokenize", {"model": "other", "prompt": "x"})[0] == 404


def test_embeddings_are_deterministic_unit_vectors(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="x")
    a = client.embeddings.create(model="m1", input=["alpha", "beta"])
    b = client.embeddings.create(model="m1", input="alpha")
    assert len(a.data) == 2 and a.data[0].embedding == b.data[0].embedding != a.data[1].embedding
    assert abs(sum(v * v for v in b.data[0].embedding) - 1) < 1e-3
    assert a.usage.prompt_tokens == len(token_ids("alpha")) + len(token_ids("beta"))
    assert get(engine.url + "/version")[1]["version"]


def test_client_disconnect_aborts_the_request(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine(speed="1")
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    stream = client.completions.create(model="m1", prompt="long one", max_tokens=2000, stream=True)
    next(iter(stream))
    assert metric(eng.metrics(), "vllm:num_requests_running") == 1
    stream.close()
    deadline = time.monotonic() + 5
    while metric(eng.metrics(), "vllm:num_requests_running") and time.monotonic() < deadline:
        time.sleep(0.02)
    s = eng.metrics()
    assert metric(s, "vllm:num_requests_running") == 0
    assert metric(s, "vllm:kv_cache_usage_perc") == 0
    assert s['vllm:request_success_total{engine="0",finished_reason="length",model_name="m1"}'] == 0


def test_client_disconnect_aborts_a_non_streamed_request_too(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine(speed="1")
    client = openai.OpenAI(base_url=eng.v1, api_key="x", timeout=0.5, max_retries=0)
    with pytest.raises(openai.APITimeoutError):  # the client gives up and closes its connection
        client.completions.create(model="m1", prompt="long one", max_tokens=2000)
    deadline = time.monotonic() + 5
    while metric(eng.metrics(), "vllm:num_requests_running") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert metric(eng.metrics(), "vllm:num_requests_running") == 0
    assert metric(eng.metrics(), "vllm:kv_cache_usage_perc") == 0
