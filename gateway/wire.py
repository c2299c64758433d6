"""What the gateway reads from an OpenAI request and response (pure; no re-encoding of bodies)."""

from __future__ import annotations

import json
from typing import Any

from gateway.errors import RequestRejected

_decoder = json.JSONDecoder()


def error_body(message: str, err_type: str, code: str | int | None, param: str | None = None) -> bytes:
    """OpenAI error JSON: {"error": {"message", "type", "param", "code"}}."""
    return json.dumps({"error": {"message": message, "type": err_type, "param": param, "code": code}}).encode()


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise RequestRejected(400, "the request body is empty; send a JSON object with at least 'model'", "invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestRejected(400, f"the request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise RequestRejected(400, "the request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestRejected(400, "'model' is required and must be a non-empty string", "missing_model")
    return body


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def prompt_text(body: dict[str, Any], path: str) -> str:
    """The text the engine will see, for prefix hashing and token estimates.

    Chat uses engine_mock's template (`<|role|>\\ncontent\\n` per message, then `<|assistant|>\\n`),
    so gateway and engine split the same tokens into the same blocks. Completions use `prompt`,
    embeddings `input` (first element when a list).
    """
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        if not isinstance(messages, list):
            return ""
        parts = [f"<|{m.get('role')}|>\n{_content_text(m.get('content'))}\n" for m in messages if isinstance(m, dict)]
        parts.append("<|assistant|>\n")
        return "".join(parts)
    value = body.get("prompt") if path.endswith("/completions") else body.get("input")
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(str(t) for t in value)
    return ""


def find_usage(data: bytes) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) of the last non-null "usage" object in a body or SSE tail."""
    pos = data.rfind(b'"usage"')
    while pos != -1:
        colon = data.find(b":", pos + 7)
        if colon == -1:
            return None
        try:
            obj, _ = _decoder.raw_decode(data[colon + 1:].lstrip().decode("utf-8", "replace"))
        except ValueError:
            obj = None
        if isinstance(obj, dict) and ("prompt_tokens" in obj or "completion_tokens" in obj):
            return int(obj.get("prompt_tokens") or 0), int(obj.get("completion_tokens") or 0)
        pos = data.rfind(b'"usage"', 0, pos)
    return None
