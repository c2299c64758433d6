"""LoRA adapters: load, use, unload, 404 when not loaded, the --max-loras limit."""

from __future__ import annotations

import openai
import pytest

from tests.engine_mock.conftest import EngineUnderTest
from tests.engine_mock.plain_http import get, post


def test_load_use_unload(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--max-loras", "2")
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="sql-lora", prompt="x", max_tokens=1)

    status, text = post(eng.v1 + "/load_lora_adapter", {"lora_name": "sql-lora", "lora_path": "/adapters/sql"})
    assert status == 200 and "added successfully" in text
    cards = {m["id"]: m for m in get(eng.v1 + "/models")[1]["data"]}
    assert cards["sql-lora"]["parent"] == "m1" and cards["sql-lora"]["root"] == "/adapters/sql"
    assert cards["m1"]["parent"] is None

    out = client.completions.create(model="sql-lora", prompt="select", max_tokens=3)
    assert out.model == "sql-lora" and out.usage and out.usage.completion_tokens == 3

    status, body = post(eng.v1 + "/load_lora_adapter", {"lora_name": "sql-lora", "lora_path": "/adapters/sql"})
    assert status == 400 and "already been loaded" in body["error"]["message"]

    status, text = post(eng.v1 + "/unload_lora_adapter", {"lora_name": "sql-lora"})
    assert status == 200 and "removed successfully" in text
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="sql-lora", prompt="x", max_tokens=1)
    status, body = post(eng.v1 + "/unload_lora_adapter", {"lora_name": "sql-lora"})
    assert status == 404 and body["error"]["type"] == "NotFoundError"


def test_max_loras_limit_and_missing_fields(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--max-loras", "2")
    for name in ("a", "b"):
        assert post(eng.v1 + "/load_lora_adapter", {"lora_name": name, "lora_path": f"/p/{name}"})[0] == 200
    status, body = post(eng.v1 + "/load_lora_adapter", {"lora_name": "c", "lora_path": "/p/c"})
    assert status == 400 and "--max-loras" in body["error"]["message"]
    assert post(eng.v1 + "/unload_lora_adapter", {"lora_name": "a"})[0] == 200
    assert post(eng.v1 + "/load_lora_adapter", {"lora_name": "c", "lora_path": "/p/c"})[0] == 200
    status, body = post(eng.v1 + "/load_lora_adapter", {"lora_name": "d"})
    assert status == 400 and "lora_path" in body["error"]["message"]
    assert sorted(m["id"] for m in get(eng.v1 + "/models")[1]["data"]) == ["b", "c", "m1"]
    samples = eng.metrics()
    info = [k for k in samples if k.startswith("vllm:lora_requests_info")]
    assert len(info) == 1 and 'max_lora="2"' in info[0]


def test_running_adapters_show_in_lora_requests_info(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--max-loras", "1", speed="1")
    post(eng.v1 + "/load_lora_adapter", {"lora_name": "sql", "lora_path": "/p/sql"})
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    stream = client.completions.create(model="sql", prompt="select", max_tokens=30, stream=True)
    next(iter(stream))  # the request is in the batch now
    labels = [k for k in eng.metrics() if k.startswith("vllm:lora_requests_info")]
    assert 'running_lora_adapters="sql"' in labels[0]
    assert sum(1 for _ in stream) == 29
    labels = [k for k in eng.metrics() if k.startswith("vllm:lora_requests_info")]
    assert 'running_lora_adapters=""' in labels[0]


def test_requests_per_adapter_are_counted_in_metrics(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--max-loras", "2")
    assert not [k for k in eng.metrics() if k.startswith("engine_mock_lora_requests_total")]
    for name in ("sql", "chat"):
        post(eng.v1 + "/load_lora_adapter", {"lora_name": name, "lora_path": f"/p/{name}"})
    client = openai.OpenAI(base_url=eng.v1, api_key="x")
    for model in ("sql", "sql", "sql", "chat", "m1"):
        client.completions.create(model=model, prompt="hi", max_tokens=2)
    m = eng.metrics()
    assert m['engine_mock_lora_requests_total{engine="0",lora_name="sql"}'] == 3
    assert m['engine_mock_lora_requests_total{engine="0",lora_name="chat"}'] == 1
    # the count outlives an unload (a counter), so a rate over a window stays right
    post(eng.v1 + "/unload_lora_adapter", {"lora_name": "sql"})
    assert eng.metrics()['engine_mock_lora_requests_total{engine="0",lora_name="sql"}'] == 3


def test_check_lora_paths_refuses_a_missing_local_path_like_vllm(start_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng: EngineUnderTest = start_engine("--check-lora-paths")
    status, body = post(eng.v1 + "/load_lora_adapter", {"lora_name": "gone", "lora_path": str(tmp_path / "nope")})
    assert status == 404 and body["error"]["message"] == f"Loading lora gone failed: No adapter found for {tmp_path / 'nope'}"
    assert "gone" not in {m["id"] for m in get(eng.v1 + "/models")[1]["data"]}
    (tmp_path / "sql").mkdir()
    assert post(eng.v1 + "/load_lora_adapter", {"lora_name": "sql", "lora_path": f"file://{tmp_path / 'sql'}"})[0] == 200
    assert post(eng.v1 + "/load_lora_adapter", {"lora_name": "hf", "lora_path": "org/name"})[0] == 200
