"""The official openai client, sync and async, stream and not, against a real engine-mock."""

from __future__ import annotations

import openai
import pytest

from brix.tokenizer import count_tokens, token_ids
from tests.engine_mock.conftest import EngineUnderTest


def test_sync_completion_counts_tokens_with_the_shared_tokenizer(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="unused")
    prompt = "The quick brown fox jumps over the lazy dog."
    out = client.completions.create(model="m1", prompt=prompt, max_tokens=7)
    assert out.object == "text_completion"
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None
    assert out.usage.prompt_tokens == count_tokens(prompt) == len(token_ids(prompt))
    assert out.usage.completion_tokens == 7 == count_tokens(out.choices[0].text)
    assert out.usage.total_tokens == out.usage.prompt_tokens + 7


def test_output_is_deterministic_in_prompt_and_seed(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="unused")

    def text(prompt: str, seed: int | None = None) -> str:
        return client.completions.create(model="m1", prompt=prompt, max_tokens=12, seed=seed).choices[0].text

    assert text("alpha") == text("alpha")
    assert text("alpha") != text("beta")
    assert text("alpha", seed=1) == text("alpha", seed=1) != text("alpha", seed=2)


def test_sync_chat_stream_with_usage_chunk(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="unused")
    chunks = list(client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "hello there"}], max_tokens=5, stream=True,
        stream_options={"include_usage": True}))
    content = [c for c in chunks if c.choices]
    # as vLLM: the role alone with empty content first, then one chunk per token without a role
    first = content[0].choices[0]
    assert (first.delta.role, first.delta.content, first.finish_reason) == ("assistant", "", None)
    assert all(c.choices[0].delta.role is None and c.choices[0].delta.content for c in content[1:])
    assert [c.choices[0].finish_reason for c in content] == [None] * 5 + ["length"]
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == 5
    assert usage.usage.prompt_tokens == count_tokens("<|user|>\nhello there\n<|assistant|>\n")


def test_stream_text_equals_non_stream_text(engine: EngineUnderTest) -> None:
    client = openai.OpenAI(base_url=engine.v1, api_key="unused")
    whole = client.completions.create(model="m1", prompt="same prompt", max_tokens=9).choices[0].text
    pieces = [c.choices[0].text for c in client.completions.create(
        model="m1", prompt="same prompt", max_tokens=9, stream=True) if c.choices]
    assert len(pieces) == 9
    assert "".join(pieces) == whole


async def test_async_chat_and_completion_stream_and_not(engine: EngineUnderTest) -> None:
    client = openai.AsyncOpenAI(base_url=engine.v1, api_key="unused")
    chat = await client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=4)
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert count_tokens(chat.choices[0].message.content or "") == 4
    stream = await client.completions.create(model="m1", prompt="async stream", max_tokens=6, stream=True,
                                             stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert sum(1 for c in chunks if c.choices) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    await client.close()


def test_models_lists_served_names(start_engine) -> None:  # type: ignore[no-untyped-def]
    eng = start_engine("--served-model-name", "alias-a", "alias-b", model="/models/llama")
    client = openai.OpenAI(base_url=eng.v1, api_key="unused")
    models = client.models.list().data
    assert [m.id for m in models] == ["alias-a", "alias-b"]
    assert client.completions.create(model="alias-b", prompt="x", max_tokens=1).choices[0].text
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="/models/llama", prompt="x", max_tokens=1)
