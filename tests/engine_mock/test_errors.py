"""OpenAI error JSON for requests a client gets wrong."""

from __future__ import annotations

import openai
import pytest

from tests.engine_mock.conftest import EngineUnderTest
from tests.engine_mock.plain_http import post


def _assert_error(status: int, body: dict, want_status: int, want_type: str) -> str:  # type: ignore[type-arg]
    assert status == want_status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == want_type
    assert body["error"]["code"] == want_status
    return str(body["error"]["message"])


def test_unknown_model_is_404(engine: EngineUnderTest) -> None:
    status, body = post(engine.v1 + "/completions", {"model": "nope", "prompt": "x"})
    assert "nope" in _assert_error(status, body, 404, "NotFoundError")
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(base_url=engine.v1, api_key="x").chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}])


def test_bad_json_is_400(engine: EngineUnderTest) -> None:
    status, body = post(engine.v1 + "/chat/completions", b"{not json", raw=True)
    assert "JSON" in _assert_error(status, body, 400, "BadRequestError")


def test_max_tokens_beyond_context_is_400(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng = start_engine("--max-model-len", "64")
    status, body = post(eng.v1 + "/completions", {"model": "m1", "prompt": "one two three", "max_tokens": 100})
    message = _assert_error(status, body, 400, "BadRequestError")
    assert "maximum context length is 64" in message
    with pytest.raises(openai.BadRequestError):
        openai.OpenAI(base_url=eng.v1, api_key="x").completions.create(model="m1", prompt="hi", max_tokens=64)


def test_request_larger_than_the_whole_kv_cache_is_400_not_a_hang(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng = start_engine("--kv-blocks", "4", "--block-size", "16")
    status, body = post(eng.v1 + "/completions", {"model": "m1", "prompt": "x", "max_tokens": 100})
    assert "--kv-blocks" in _assert_error(status, body, 400, "BadRequestError")


@pytest.mark.parametrize("body", [{"model": "m1"}, {"model": "m1", "prompt": 5}, {"prompt": "x"},
                                  {"model": "m1", "prompt": "x", "max_tokens": 0},
                                  {"model": "m1", "prompt": "x", "n": 2}])
def test_malformed_requests_are_400(engine: EngineUnderTest, body: dict) -> None:  # type: ignore[type-arg]
    status, answer = post(engine.v1 + "/completions", body)
    _assert_error(status, answer, 400, "BadRequestError")
