"""Token counts when an engine's stream carries no usage chunk (client did not ask include_usage)."""

from __future__ import annotations

from brix.tokenizer import count_tokens


def estimate_stream_usage(prompt: str | None, stream_events: int) -> tuple[int, int]:
    """(prompt tokens, completion tokens): the prompt counted with brix.tokenizer (the engine's),
    and one token per content event, as vLLM streams one token per chunk (minus the final [DONE])."""
    prompt_tokens = count_tokens(prompt) if prompt else 0
    return prompt_tokens, max(0, stream_events - 1)
