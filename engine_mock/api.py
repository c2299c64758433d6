"""The OpenAI/vLLM wire format: request parsing, response bodies, SSE chunks and error JSON.

Pure functions over dicts and strings (no I/O), so the server stays a thin edge. Shapes follow
what vLLM's OpenAI server returns, field for field where a client can notice.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from brix.tokenizer import token_ids
from engine_mock.model import Fault

DEFAULT_MAX_TOKENS = 16
# compact JSON, as vLLM's pydantic responses are
dumps = partial(json.dumps, separators=(",", ":"))

# Every word is exactly one token of brix.tokenizer (a space and at most 4 word characters, or
# one punctuation mark), so count_tokens(generated text) == completion_tokens.
WORDS = (
    " the", " of", " and", " to", " in", " a", " is", " that", " for", " it", " as", " was", " with",
    " on", " be", " by", " this", " are", " or", " from", " at", " an", " but", " not", " we", " can",
    " all", " have", " more", " one", " will", " new", " time", " data", " like", " when", " GPU",
    " fast", " each", " node", " pod", " path", " load", " step", " then", " so", " also", " some",
    ",", ".", " may", " its", " our", " into", " used", " make", " work", " run", " both", " well",
    " cost", " each", " over", " less",
)


class ApiError(Exception):
    """An error answered with OpenAI's error JSON."""

    def __init__(self, status: int, message: str, type_: str = "BadRequestError", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.type, self.param)


def error_body(status: int, message: str, type_: str, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": status}}).encode()


def not_found_model(name: str) -> ApiError:
    return ApiError(404, f"The model `{name}` does not exist.", "NotFoundError", "model")


@dataclass(slots=True)
class GenRequest:
    """A parsed completions or chat request."""

    chat: bool
    model: str  # the name the client asked for (served name or adapter)
    prompt_text: str
    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    seed: int


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def chat_prompt(messages: Any) -> str:
    """engine-mock's chat template: `<|role|>\\ncontent\\n` per message, then `<|assistant|>\\n`."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
    parts = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a string 'role'", param="messages")
        content = msg.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        elif not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string or a list of parts", param="messages")
        parts.append(f"<|{msg['role']}|>\n{content}\n")
    parts.append("<|assistant|>\n")
    return "".join(parts)


def _prompt(body: dict[str, Any]) -> tuple[str, list[int]]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, token_ids(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return " ".join(map(str, prompt)), list(prompt)
    if isinstance(prompt, list) and len(prompt) > 1:
        raise ApiError(400, "engine-mock serves one prompt per request; send the prompts one by one", param="prompt")
    raise ApiError(400, "'prompt' must be a string or a list of token ids", param="prompt")


def parse_generate(body: dict[str, Any], chat: bool, default_seed: int, max_model_len: int) -> GenRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a string", param="model")
    if chat:
        text = chat_prompt(body.get("messages"))
        ids = token_ids(text)
    else:
        text, ids = _prompt(body)
    max_tokens = body.get("max_completion_tokens") if chat else None
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ApiError(400, f"max_tokens must be an integer >= 1, got {max_tokens!r}", param="max_tokens")
    n = body.get("n", 1)
    if n not in (1, None):
        raise ApiError(400, f"engine-mock supports n=1 only, got n={n!r}", param="n")
    if len(ids) + max_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested"
            f" {len(ids) + max_tokens} tokens ({len(ids)} in the {'messages' if chat else 'prompt'},"
            f" {max_tokens} in the completion). Please reduce the length of the"
            f" {'messages' if chat else 'prompt'} or completion.",
            param="max_tokens",
        )
    seed = body.get("seed")
    if seed is None:
        seed = default_seed
    elif not isinstance(seed, int) or isinstance(seed, bool):
        raise ApiError(400, f"seed must be an integer, got {seed!r}", param="seed")
    stream = bool(body.get("stream", False))
    opts = body.get("stream_options") or {}
    include_usage = bool(stream and isinstance(opts, dict) and opts.get("include_usage"))
    return GenRequest(chat, model, text, ids, max_tokens, stream, include_usage, seed)


def output_pieces(prompt_text: str, seed: int, n: int) -> list[str]:
    """The n output tokens: a deterministic function of (prompt, seed) (a 64-bit LCG)."""
    x = (zlib.crc32(prompt_text.encode()) << 20) ^ ((seed * 0x9E3779B97F4A7C15) & _MASK)
    words, size = WORDS, len(WORDS)
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & _MASK
        out.append(words[(x >> 33) % size])
    return out


_MASK = (1 << 64) - 1


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion,
            "prompt_tokens_details": None}


def completion_body(rid: str, created: int, model: str, text: str, prompt: int, completion: int) -> bytes:
    return dumps({
        "id": rid, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None,
                     "prompt_logprobs": None}],
        "usage": usage(prompt, completion), "kv_transfer_params": None,
    }).encode()


def chat_body(rid: str, created: int, model: str, text: str, prompt: int, completion: int) -> bytes:
    return dumps({
        "id": rid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "reasoning_content": None, "content": text,
                                             "tool_calls": []},
                     "logprobs": None, "finish_reason": "length", "stop_reason": None}],
        "usage": usage(prompt, completion), "prompt_logprobs": None, "kv_transfer_params": None,
    }).encode()


def sse(doc: dict[str, Any]) -> bytes:
    return b"data: " + dumps(doc).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def completion_chunk(rid: str, created: int, model: str, text: str, finish: str | None) -> bytes:
    return sse({"id": rid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                             "stop_reason": None}]})


def chat_chunk(rid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    return sse({"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})


def usage_chunk(rid: str, created: int, model: str, chat: bool, prompt: int, completion: int) -> bytes:
    return sse({"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
                "model": model, "choices": [], "usage": usage(prompt, completion)})


def embedding_vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for `text`."""
    rng = random.Random(zlib.crc32(text.encode()))
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def parse_fault(body: dict[str, Any], current: Fault) -> Fault:
    """The fault knobs after applying a POST /admin/fault body to `current`."""
    fault = Fault(current.drop_connection_after_tokens, current.slow_factor, current.unhealthy)
    unknown = set(body) - {"drop_connection_after_tokens", "slow_factor", "unhealthy"}
    if unknown:
        raise ApiError(400, f"unknown fault knobs {sorted(unknown)}; known: drop_connection_after_tokens,"
                       " slow_factor, unhealthy")
    if "drop_connection_after_tokens" in body:
        drop = body["drop_connection_after_tokens"]
        if drop is not None and (not isinstance(drop, int) or isinstance(drop, bool) or drop < 0):
            raise ApiError(400, "drop_connection_after_tokens must be null or an integer >= 0")
        fault.drop_connection_after_tokens = drop
    if "slow_factor" in body:
        slow = body["slow_factor"]
        if not isinstance(slow, (int, float)) or isinstance(slow, bool) or slow <= 0:
            raise ApiError(400, "slow_factor must be a number > 0 (1 = normal speed)")
        fault.slow_factor = float(slow)
    if "unhealthy" in body:
        if not isinstance(body["unhealthy"], bool):
            raise ApiError(400, "unhealthy must be true or false")
        fault.unhealthy = body["unhealthy"]
    return fault
