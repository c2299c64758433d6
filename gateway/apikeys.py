"""API keys, stored hashed.

File format (YAML; `brix gateway-hash-key` prints the hash of a key read from stdin):

    keys:
      - name: team-a                  # shown in logs and metrics, never the key itself
        sha256: 9f86d081884c7d65...   # hex SHA-256 of the full key string, e.g. "sk-brix-..."
        rpm: 600                      # optional: requests per minute (sliding window); 0/absent = unlimited
        tpm: 200000                   # optional: tokens (prompt + completion) per minute
        models: [llama-3-8b]          # optional: the models this key may use; absent = all

Keys are long random strings, so an unsalted SHA-256 is enough to make a leaked file useless
and keeps the per-request check to one hash (a slow KDF would cost milliseconds per request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from brix.files import read_yaml

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    rpm: int = 0
    tpm: int = 0
    models: frozenset[str] | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyBook:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {k.sha256: k for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, authorization: str | None) -> ApiKey | None:
        """The key for an `Authorization: Bearer <key>` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hash_key(token.strip())
        found = self._by_hash.get(digest)
        # dict lookup already decided; compare_digest keeps the final check constant-time
        if found is not None and hmac.compare_digest(found.sha256, digest):
            return found
        return None


def load_keys(path: str | Path) -> KeyBook:
    """Read and validate an API keys file; ValueError lists every problem with its place."""
    p = Path(path)
    doc = read_yaml(p, "API keys file")
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"API keys file {p}: expected a mapping with a list under 'keys:'")
    problems: list[str] = []
    keys: list[ApiKey] = []
    names: set[str] = set()
    for i, item in enumerate(doc["keys"]):
        where = f"{p}: keys[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with name and sha256")
            continue
        unknown = set(item) - {"name", "sha256", "rpm", "tpm", "models"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name, digest = item.get("name"), str(item.get("sha256", "")).lower()
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: missing")
        elif name in names:
            problems.append(f"{where}.name: duplicate name {name!r}")
        else:
            names.add(name)
        if not _HEX64.match(digest):
            problems.append(f"{where}.sha256: expected 64 hex characters (use `brix gateway-hash-key`)")
        limits = {}
        for field in ("rpm", "tpm"):
            value = item.get(field, 0) or 0
            if not isinstance(value, int) or value < 0:
                problems.append(f"{where}.{field}: expected a non-negative integer, got {value!r}")
                value = 0
            limits[field] = value
        models = item.get("models")
        if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
            problems.append(f"{where}.models: expected a list of model names")
            models = None
        keys.append(ApiKey(str(name), digest, limits["rpm"], limits["tpm"],
                           frozenset(models) if models is not None else None))
    if problems:
        raise ValueError("\n".join(problems))
    return KeyBook(keys)
