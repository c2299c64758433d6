"""The KVCache spec as the controller reads it (pure): defaults applied, contradictions refused.

The CRD (deploy/crds/orchestration.brix.dev_kvcaches.yaml) already refuses most bad specs at apply
time; `parse_spec` repeats the checks so that a spec written before a CRD upgrade, or into the
emulator, still gets a clear message in status instead of a broken StatefulSet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

GROUP = "orchestration.brix.dev"
VERSION = "v1alpha1"
PLURAL = "kvcaches"
KIND = "KVCache"
NAME_LABEL = "kvcache.orchestration.brix.dev/name"
ROLE_LABEL = "kvcache.orchestration.brix.dev/role"
SPEC_HASH = "kvcache.orchestration.brix.dev/spec-hash"
DEFAULT_IMAGE = "brix:0.1.0"
DEFAULT_REDIS_IMAGE = "redis:7.2"
_SIZE = re.compile(r"\d+(\.\d+)?(Ki|Mi|Gi|Ti|KiB|MiB|GiB|TiB|K|M|G|T|KB|MB|GB|TB)?")


class SpecError(ValueError):
    """A spec the controller cannot act on; the message names the field and the fix."""


@dataclass(frozen=True)
class KVCacheSpec:
    mode: str = "distributed"
    replicas: int = 1
    capacity: str = "4GiB"
    eviction: str = "s3fifo"
    redis_address: str = ""  # external metadata store host:port ("" with managed_redis)
    managed_redis: bool = False
    image: str = DEFAULT_IMAGE
    redis_image: str = DEFAULT_REDIS_IMAGE
    resources: dict[str, Any] = field(default_factory=dict)
    port: int = 9600
    http_port: int = 9601


def parse_spec(spec: dict[str, Any]) -> KVCacheSpec:
    mode = spec.get("mode", "distributed")
    if mode not in ("distributed", "centralized"):
        raise SpecError(f"spec.mode must be distributed or centralized, got {mode!r}")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise SpecError(f"spec.replicas must be an integer >= 0, got {replicas!r}")
    if mode == "centralized" and replicas > 1:
        raise SpecError(f"spec.replicas is {replicas} but a centralized KVCache is one server; "
                        "use mode: distributed for several")
    capacity = str(spec.get("capacity", "4GiB"))
    if not _SIZE.fullmatch(capacity):
        raise SpecError(f"spec.capacity {capacity!r} is not a size; write 4GiB, 512Mi or 10G")
    eviction = spec.get("eviction", "s3fifo")
    if eviction not in ("s3fifo", "lru"):
        raise SpecError(f"spec.eviction must be s3fifo or lru, got {eviction!r}")
    meta = (spec.get("metadata") or {}).get("redis") or {}
    address = str(meta.get("address", "") or "")
    managed = bool(meta.get("managed", False))
    if address and managed:
        raise SpecError("spec.metadata.redis has both address and managed: true; give one")
    if address and not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+:\d+", address):
        raise SpecError(f"spec.metadata.redis.address {address!r} must be host:port")
    if mode == "distributed" and not address:
        managed = True  # a distributed pool needs a membership store; run one unless told where it is
    if mode == "centralized":
        address, managed = "", False
    service = spec.get("service") or {}
    for key, default in (("port", 9600), ("metricsPort", 9601)):
        value = service.get(key, default)
        if not isinstance(value, int) or not 0 < value < 65536:
            raise SpecError(f"spec.service.{key} must be a TCP port (1-65535), got {value!r}")
    if service.get("port", 9600) == service.get("metricsPort", 9601):
        raise SpecError("spec.service.port and spec.service.metricsPort must differ")
    cache = spec.get("cache") or {}
    return KVCacheSpec(
        mode=mode, replicas=replicas, capacity=capacity, eviction=eviction, redis_address=address,
        managed_redis=managed, image=str(cache.get("image") or DEFAULT_IMAGE),
        redis_image=str((meta.get("image") if isinstance(meta, dict) else None) or DEFAULT_REDIS_IMAGE),
        resources=dict(spec.get("resources") or {}), port=int(service.get("port", 9600)),
        http_port=int(service.get("metricsPort", 9601)))


def pool_name(namespace: str, name: str) -> str:
    """The pool's name in the membership store (one Redis may hold several pools)."""
    return f"{namespace}.{name}"
