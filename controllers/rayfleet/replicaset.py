"""One sync of a RayClusterReplicaSet (pure): how many RayClusters to create, which to delete, and the
status, given its clusters and `now`.

Active clusters are those not being deleted and not failed. A failed cluster is deleted (it holds
nodes and serves nothing) and, as it is not active, replaced. Extra clusters are removed in
this order: not ready before ready, lower deletion cost (annotation
orchestration.brix.dev/deletion-cost, or AIBrix's controller.kubernetes.io/pod-deletion-cost),
newest first, then by name. A cluster is available once it has been ready for minReadySeconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controllers.conditions import iso
from controllers.rayfleet.raycluster import ClusterView

BURST = 500
"""At most this many creates or deletes in one sync (the ReplicaSet controller's burstReplicas)."""
FAILED_CREATE, FAILED_DELETE = "FailedCreate", "FailedDelete"


@dataclass
class ReplicaSetPlan:
    create: int = 0
    delete: list[str] = field(default_factory=list)     # in the order they go


def active(clusters: Sequence[ClusterView]) -> list[ClusterView]:
    return [c for c in clusters if not c.deleting and not c.failed]


def deletion_order(clusters: Sequence[ClusterView]) -> list[ClusterView]:
    return sorted(clusters, key=lambda c: (c.ready, c.deletion_cost, -c.created, c.name))


def reconcile(replicas: int, clusters: Sequence[ClusterView]) -> ReplicaSetPlan:
    """`clusters`: those the replica set owns (by controller reference)."""
    plan = ReplicaSetPlan()
    plan.delete = [c.name for c in clusters if c.failed and not c.deleting]
    live = active(clusters)
    diff = len(live) - replicas
    if diff < 0:
        plan.create = min(-diff, BURST)
    elif diff > 0:
        plan.delete += [c.name for c in deletion_order(live)[:min(diff, BURST)]]
    return plan


def available(c: ClusterView, min_ready_s: int, now: float) -> bool:
    if not c.ready:
        return False
    if min_ready_s <= 0:
        return True
    return c.ready_since is not None and c.ready_since + min_ready_s <= now


def summarize(generation: int, min_ready_s: int, clusters: Sequence[ClusterView], now: float,
              old_conditions: list[dict[str, Any]], failure: tuple[str, str] | None) -> tuple[dict[str, Any], float | None]:
    """The status after this sync, and when to look again so that a ready cluster turns available
    (minReadySeconds). `failure`: (reason, message) of a create or delete the API refused, else None."""
    live = active(clusters)
    ready = [c for c in live if c.ready]
    avail = [c for c in ready if available(c, min_ready_s, now)]
    waits = [c.ready_since + min_ready_s - now for c in ready if c not in avail and c.ready_since is not None]
    conditions = [c for c in old_conditions if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        old = next((c for c in old_conditions if c.get("type") == "ReplicaFailure"), None)
        since = old["lastTransitionTime"] if old and old.get("status") == "True" else iso(now)
        conditions.append({"type": "ReplicaFailure", "status": "True", "reason": failure[0], "message": failure[1],
                           "lastTransitionTime": since})
    status = {"replicas": len(live), "readyReplicas": len(ready), "availableReplicas": len(avail),
              "terminatingReplicas": sum(1 for c in clusters if c.deleting),
              "failedReplicas": sum(1 for c in clusters if c.failed and not c.deleting),
              "observedGeneration": generation, "conditions": conditions}
    return status, (max(0.0, min(waits)) + 0.05 if waits else None)
