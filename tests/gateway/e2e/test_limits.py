"""API keys (401), per-key RPM and TPM in a real redis-server (429 + Retry-After), per-model RPS."""

from __future__ import annotations

import openai
import pytest

from gateway.apikeys import hash_key


def write_keys(path, rpm: int = 0, tpm: int = 0):  # type: ignore[no-untyped-def]
    path.write_text(f"""
keys:
  - name: team-a
    sha256: {hash_key("sk-a")}
    rpm: {rpm}
    tpm: {tpm}
  - name: team-b
    sha256: {hash_key("sk-b")}
""")
    return str(path)


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)


def test_api_keys_401_without_or_with_a_wrong_key(start_engines, start_gateway, tmp_path):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines], "--api-keys-file", write_keys(tmp_path / "keys.yaml"))
    with pytest.raises(openai.AuthenticationError) as info:
        client(url, "sk-wrong").completions.create(model="mock-llm", prompt="x", max_tokens=1)
    assert info.value.body["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        client(url, "sk-wrong").models.list()
    assert client(url, "sk-b").completions.create(model="mock-llm", prompt="x", max_tokens=1).choices


def test_rpm_limit_in_redis_is_shared_by_two_gateways(start_engines, start_gateway, tmp_path, redis_url):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    keys = write_keys(tmp_path / "keys.yaml", rpm=5)
    gw1 = start_gateway([e.url for e in engines], "--api-keys-file", keys, "--redis", redis_url)
    gw2 = start_gateway([e.url for e in engines], "--api-keys-file", keys, "--redis", redis_url)
    ok = 0
    for i in range(5):
        client(gw1 if i % 2 else gw2, "sk-a").completions.create(model="mock-llm", prompt="x", max_tokens=1)
        ok += 1
    with pytest.raises(openai.RateLimitError) as info:
        client(gw1, "sk-a").completions.create(model="mock-llm", prompt="x", max_tokens=1)
    retry_after = int(info.value.response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    # another key is not limited
    assert client(gw2, "sk-b").completions.create(model="mock-llm", prompt="x", max_tokens=1).choices


def test_tpm_counts_real_usage_including_streams(start_engines, start_gateway, tmp_path, redis_url):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    url = start_gateway([e.url for e in engines], "--api-keys-file",
                        write_keys(tmp_path / "keys.yaml", tpm=60), "--redis", redis_url)
    c = client(url, "sk-a")
    # a stream without include_usage: the gateway counts prompt tokens and content events itself
    list(c.completions.create(model="mock-llm", prompt="one two", max_tokens=30, stream=True))
    # one stream with include_usage: 30 + prompt tokens -> over 60 in total
    list(c.chat.completions.create(model="mock-llm", messages=[{"role": "user", "content": "hi"}], max_tokens=30,
                                   stream=True, stream_options={"include_usage": True}))
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(3):
            c.completions.create(model="mock-llm", prompt="x", max_tokens=1)
    assert "tokens per minute" in info.value.message


def test_per_model_rps_from_config(start_engines, start_gateway, tmp_path):  # type: ignore[no-untyped-def]
    engines = start_engines(1)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("models:\n  mock-llm:\n    rps: 3\n")
    url = start_gateway([e.url for e in engines], "--config", str(cfg))
    c = client(url, "x")
    codes = []
    for _ in range(6):
        try:
            c.completions.create(model="mock-llm", prompt="x", max_tokens=1)
            codes.append(200)
        except openai.RateLimitError:
            codes.append(429)
    assert codes.count(200) == 3 and codes.count(429) == 3
