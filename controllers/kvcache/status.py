"""A KVCache's status from what its objects report (pure)."""

from __future__ import annotations

from typing import Any

from controllers.conditions import set_condition
from controllers.kvcache.model import KVCacheSpec


def summarize(spec: KVCacheSpec | None, error: str | None, sts: dict[str, Any] | None,
              redis: dict[str, Any] | None, url: str, conditions: list[dict[str, Any]], now: float,
              generation: int | None) -> dict[str, Any]:
    """phase Pending | Ready | Degraded | Failed, ready counts, the engines' pool URL, a Ready condition."""
    if spec is None:
        return {"phase": "Failed", "replicas": 0, "readyReplicas": 0, "observedGeneration": generation,
                "conditions": set_condition(conditions, "Ready", False, "InvalidSpec", error or "", now)}
    st = (sts or {}).get("status") or {}
    ready = int(st.get("readyReplicas") or 0)
    metadata_ready = True
    if spec.managed_redis:
        metadata_ready = int(((redis or {}).get("status") or {}).get("readyReplicas") or 0) >= 1
    if ready >= spec.replicas and metadata_ready:
        phase, reason = "Ready", "AllServersReady"
        message = f"{ready}/{spec.replicas} cache servers ready"
    elif ready > 0 and metadata_ready:
        phase, reason = "Degraded", "SomeServersReady"
        message = f"{ready}/{spec.replicas} cache servers ready; the pool serves with fewer servers (misses)"
    else:
        phase, reason = "Pending", "ServersNotReady" if metadata_ready else "MetadataStoreNotReady"
        message = (f"{ready}/{spec.replicas} cache servers ready" if metadata_ready
                   else "the managed Redis (membership store) is not ready yet")
    return {"phase": phase, "replicas": spec.replicas, "readyReplicas": ready, "poolURL": url,
            "mode": spec.mode, "observedGeneration": generation,
            "conditions": set_condition(conditions, "Ready", phase == "Ready", reason, message, now)}
