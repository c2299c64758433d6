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
# token text -> id: real text repeats a small vocabulary, and a dict hit is cheaper than
# encode + crc32 (the gateway tokenizes every prompt it routes by prefix). Bounded: cleared when full.
_ID_CACHE: dict[str, int] = {}
_ID_CACHE_MAX = 200_000


def tokenize(text: str) -> list[str]:
    """Split text into token strings; "".join(tokenize(t)) == t except for trailing-space runs."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def token_ids(text: str) -> list[int]:
    toks = _TOKEN.findall(text)
    cache = _ID_CACHE
    try:
        return [cache[t] for t in toks]
    except KeyError:
        if len(cache) > _ID_CACHE_MAX:
            cache.clear()
        for t in toks:
            if t not in cache:
                cache[t] = zlib.crc32(t.encode()) % VOCAB_SIZE
        return [cache[t] for t in toks]
