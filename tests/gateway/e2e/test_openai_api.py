"""The official openai client through the gateway to engine_mock: chat and completions, streamed
and not, model list, embeddings, request ids and OpenAI error JSON."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import openai
import pytest


@pytest.fixture
def stack(shared_stack):  # type: ignore[no-untyped-def]
    url, engines = shared_stack
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=20)
    return url, engines, client


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:  # type: ignore[type-arg]
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_chat_and_completions_non_streamed(stack):
    _, _, client = stack
    chat = client.chat.completions.create(model="mock-llm", messages=[{"role": "user", "content": "Hello there"}],
                                          max_tokens=5)
    assert chat.choices[0].message.content and chat.usage.completion_tokens == 5
    comp = client.completions.create(model="mock-llm", prompt="Once upon a time", max_tokens=4)
    assert comp.choices[0].text and comp.usage.completion_tokens == 4


def test_streams_pass_through_chunk_by_chunk(stack):
    _, _, client = stack
    stream = client.chat.completions.create(model="mock-llm", messages=[{"role": "user", "content": "Hi"}],
                                            max_tokens=8, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices]) == 1 + 8 and text  # vLLM's role-only chunk, then one per token
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    comp = list(client.completions.create(model="mock-llm", prompt="abc", max_tokens=3, stream=True))
    assert len(comp) == 3


def test_stream_is_not_buffered(start_engines, start_gateway):  # type: ignore[no-untyped-def]
    # a slow engine: 40 tokens take well over a second; the first chunk must arrive long before the last
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines])
    urllib.request.urlopen(urllib.request.Request(engines[0].url + "/admin/fault", data=b'{"slow_factor": 40}',
                                                  headers={"Content-Type": "application/json"}), timeout=5)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    t0 = time.monotonic()
    arrivals = []
    for _ in client.completions.create(model="mock-llm", prompt="stream me", max_tokens=40, stream=True):
        arrivals.append(time.monotonic() - t0)
    assert len(arrivals) == 40
    assert arrivals[0] < arrivals[-1] / 3, arrivals


def test_models_lists_the_union_of_endpoints(stack):
    _, _, client = stack
    assert [m.id for m in client.models.list()] == ["mock-llm"]


def test_embeddings(stack):
    _, _, client = stack
    emb = client.embeddings.create(model="mock-llm", input="embed this")
    assert len(emb.data[0].embedding) > 0


def test_request_id_is_kept_or_created(stack):
    url, _, _ = stack
    body = json.dumps({"model": "mock-llm", "prompt": "x", "max_tokens": 1}).encode()
    status, headers, _ = post(url + "/v1/completions", body, {"x-request-id": "my-req-1"})
    assert status == 200 and headers["x-request-id"] == "my-req-1"
    status, headers, _ = post(url + "/v1/completions", body)
    assert status == 200 and len(headers["x-request-id"]) >= 16


def test_unknown_model_is_404_openai_error(stack):
    _, _, client = stack
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_unknown_strategy_is_400(stack):
    _, _, client = stack
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="mock-llm", prompt="x", max_tokens=1,
                                  extra_headers={"routing-strategy": "fastest-possible"})
    assert "fastest-possible" in info.value.message


def test_malformed_bodies_are_400(stack):
    url, _, _ = stack
    for body in (b"{not json", b"[1,2]", b"", json.dumps({"prompt": "no model"}).encode()):
        status, _, doc = post(url + "/v1/completions", body)
        assert status == 400, body
        assert set(doc["error"]) >= {"message", "type", "code"}


def test_oversized_body_is_413(stack):
    url, _, _ = stack
    body = json.dumps({"model": "mock-llm", "prompt": "x" * 100_000}).encode()
    status, _, doc = post(url + "/v1/completions", body)
    assert status == 413 and "limit" in doc["error"]["message"]


def test_gateway_metrics_count_requests_by_model_strategy_endpoint_status(stack):
    url, engines, client = stack
    client.completions.create(model="mock-llm", prompt="x", max_tokens=1, extra_headers={"routing-strategy": "random"})
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'brix_gateway_requests_total{endpoint="http://127.0.0.1' in text
    assert 'model="mock-llm",status="200",strategy="random"' in text
    assert "brix_gateway_routing_decision_seconds_count" in text
    assert "brix_gateway_time_to_first_token_seconds_count" in text
