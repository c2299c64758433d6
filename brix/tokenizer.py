"""The deterministic tokenizer that engine_mock serves and the gateway counts with.

A token is a run of at most 4 word characters, or one other non-space character, with the
whitespace before it attached: "Hello, world" -> ["Hell", "o", ",", " worl", "d"].
That gives roughly one token per 4 characters of English, close to BPE tokenizers' average,
and it is fast (one regex scan in C). Token ids are crc32 of the token text modulo VOCAB_SIZE,
stable across processes (unlike Python's hash()).
"""

from __future__ import annotations

import re
import zlib

VOCAB_SIZE = 32000
_TOKEN = re.compile(r"\s*(?:\w{1,4}|[^\w\s])|\s+$")


def tokenize(text: str) -> list[str]:
    """Split text into token strings; "".join(tokenize(t)) == t except for trailing-space runs."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def token_ids(text: str) -> list[int]:
    return [zlib.crc32(tok.encode()) % VOCAB_SIZE for tok in _TOKEN.findall(text)]
