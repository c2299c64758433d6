"""Test-only fault knobs: --fail-rate and POST /admin/fault."""

from __future__ import annotations

import openai
import pytest

from tests.engine_mock.conftest import EngineUnderTest, metric
from tests.engine_mock.plain_http import get, post


def test_unhealthy_and_back(engine: EngineUnderTest) -> None:
    assert post(engine.url + "/admin/fault", {"unhealthy": True})[0] == 200
    assert get(engine.url + "/health")[0] == 503
    assert get(engine.url + "/healthz")[0] == 503
    assert post(engine.url + "/admin/fault", {"unhealthy": False})[0] == 200
    assert get(engine.url + "/health")[0] == 200


def test_bad_fault_knobs_are_400(engine: EngineUnderTest) -> None:
    status, body = post(engine.url + "/admin/fault", {"slow_factr": 2})
    assert status == 400 and "slow_factr" in body["error"]["message"]
    assert post(engine.url + "/admin/fault", {"slow_factor": 0})[0] == 400


def test_drop_connection_after_tokens(engine: EngineUnderTest) -> None:
    post(engine.url + "/admin/fault", {"drop_connection_after_tokens": 2})
    client = openai.OpenAI(base_url=engine.v1, api_key="x", max_retries=0)
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.completions.create(model="m1", prompt="x", max_tokens=10, stream=True):
            got.append(chunk.choices[0].text)
    assert len(got) == 2
    with pytest.raises(openai.APIConnectionError):
        client.completions.create(model="m1", prompt="x", max_tokens=10)
    # a request shorter than the drop point is served normally
    assert client.completions.create(model="m1", prompt="x", max_tokens=1).choices[0].text
    post(engine.url + "/admin/fault", {"drop_connection_after_tokens": None})
    assert client.completions.create(model="m1", prompt="x", max_tokens=10).usage.completion_tokens == 10
    assert metric(engine.metrics(), "vllm:num_requests_running") == 0


def test_slow_factor_stretches_simulated_latency(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="x")

    def e2e(prompt: str) -> float:
        before = metric(engine.metrics(), "vllm:request_decode_time_seconds_sum")
        client.completions.create(model="m1", prompt=prompt, max_tokens=8)
        return metric(engine.metrics(), "vllm:request_decode_time_seconds_sum") - before

    normal = e2e("first prompt")
    post(engine.url + "/admin/fault", {"slow_factor": 4})
    slow = e2e("second prompt")
    assert slow > 3 * normal


def test_fail_rate_one_fails_every_generate_request(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng = start_engine("--fail-rate", "1")
    status, body = post(eng.v1 + "/completions", {"model": "m1", "prompt": "x"})
    assert status == 500 and body["error"]["type"] == "InternalServerError"
    assert get(eng.url + "/health")[0] == 200
