"""vLLM's LoRA API on an engine pod (engine-mock serves the same): GET /v1/models, the max_lora label of
vllm:lora_requests_info in /metrics, POST /v1/load_lora_adapter and /v1/unload_lora_adapter."""

from __future__ import annotations

import json

import aiohttp

from brix.vllm_metrics import samples
from controllers.modeladapter.reconcile import Action, Outcome


async def models(session: aiohttp.ClientSession, url: str, timeout_s: float) -> tuple[frozenset[str], frozenset[str]] | None:
    """(base model ids, adapter ids) from GET /v1/models; None when the engine does not answer."""
    try:
        async with session.get(url + "/v1/models", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                return None
            doc = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
        return None
    cards = [c for c in (doc.get("data") or []) if isinstance(c, dict)] if isinstance(doc, dict) else []
    base = frozenset(str(c["id"]) for c in cards if c.get("id") and not c.get("parent"))
    adapters = frozenset(str(c["id"]) for c in cards if c.get("id") and c.get("parent"))
    return base, adapters


async def metrics_text(session: aiohttp.ClientSession, url: str, timeout_s: float) -> str | None:
    """The engine's /metrics page; None = not answering."""
    try:
        async with session.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                return None
            return await resp.text()
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None


async def max_loras(session: aiohttp.ClientSession, url: str, timeout_s: float) -> int | None:
    """The engine's --max-loras from /metrics (vLLM exports it as a label); None = not answering."""
    text = await metrics_text(session, url, timeout_s)
    if text is None:
        return None
    for labels, _ in samples(text, "vllm:lora_requests_info"):
        if labels.get("max_lora", "").isdigit():
            return int(labels["max_lora"])
    return 0


def _message(status: int, text: str) -> str:
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            err = doc.get("error") if isinstance(doc.get("error"), dict) else doc
            text = str(err.get("message") or text)
    except ValueError:
        pass
    return f"HTTP {status}: {text.strip()[:500]}"


async def apply(session: aiohttp.ClientSession, action: Action, timeout_s: float) -> Outcome:
    """Do one load or unload; a load counts only once GET /v1/models lists the adapter."""
    headers = {"Authorization": f"Bearer {action.api_key}"} if action.api_key else {}
    if action.kind == "load":
        path, body = "/v1/load_lora_adapter", {"lora_name": action.adapter, "lora_path": action.lora_path}
    else:
        path, body = "/v1/unload_lora_adapter", {"lora_name": action.adapter}
    try:
        async with session.post(action.url + path, json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            status, text = resp.status, await resp.text()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return Outcome(action, False, False, f"{type(exc).__name__}: {exc}".rstrip(": "))
    listed = await models(session, action.url, timeout_s)
    present = listed is not None and action.adapter in listed[1]
    if action.kind == "unload":
        if status in (200, 201) or status == 404 or (listed is not None and not present):
            return Outcome(action, True)
        return Outcome(action, False, False, _message(status, text))
    if status in (200, 201) or (status == 400 and "already been loaded" in text):
        if present:
            return Outcome(action, True)
        return Outcome(action, False, False, "the engine answered the load but GET /v1/models does not list it")
    if 400 <= status < 500:
        return Outcome(action, False, True, _message(status, text))
    return Outcome(action, False, False, _message(status, text))


