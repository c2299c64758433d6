"""The template hash that names a fleet's replica set for each revision (pure).

As Deployments' pod-template-hash: FNV-1a (32 bit) over the template and the fleet's collision
count, written as a decimal and re-encoded in an alphabet without vowels or look-alike characters
(rand.SafeEncodeString), at most 10 characters. The template is hashed in a canonical form: the
hash label dropped, keys sorted, and empty maps, lists and nulls removed, because the API server's
"unset" and "empty" are the same template (Kubernetes compares templates with semantic equality).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from controllers.rayfleet.model import HASH_LABEL

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def canonical(template: dict[str, Any]) -> dict[str, Any]:
    """The template without the hash label, with empty values removed."""
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return _prune(t)


def equal_ignore_hash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """deploymentutil.EqualIgnoreHash: the same template apart from the hash label."""
    return canonical(a) == canonical(b)


def fnv32a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each character mapped into a 27-letter alphabet that cannot spell words."""
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in text)


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    data = json.dumps(canonical(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))
