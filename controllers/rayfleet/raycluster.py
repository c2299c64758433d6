"""KubeRay's RayCluster (ray.io/v1) as the replica-set controller writes and reads it (pure).

- `raycluster_body`: the RayCluster a replica set creates: its template's spec, with the template's
  labels (and the hash) on the cluster and on the head pod (so the fleet's /scale selector finds
  the head pods, where a multi-node engine serves: a PodAutoscaler scrapes them), owned by the
  replica set, and the head's `rayStartParams` completed with Brix's defaults.
- `cluster_view`: ready when KubeRay says so: the HeadPodReady and RayClusterProvisioned
  conditions True (KubeRay >= 1.2), or, without conditions, `status.state: ready`; failed on
  `state: failed`; suspended clusters are not ready.
- `ray_start_argv`: `ray start` from rayStartParams exactly as KubeRay builds the command (sorted
  flags, "true" as a bare switch, "false" dropped except for the flags that take a boolean value).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from controllers.rayfleet.model import (
    API_VERSION,
    DELETION_COST,
    POD_DELETION_COST,
    RAY_GROUP,
    RAY_VERSION,
    RAYCLUSTER_KIND,
    RS_KIND,
    controller_uid,
    parse_time,
)

MAX_NAME = 53
"""KubeRay refuses RayCluster names longer than 53 characters (its longest Service suffix is
"-serve-svc"); generateName adds 5 characters to the prefix."""

HEAD_DEFAULTS = {
    "dashboard-host": "0.0.0.0",        # the dashboard and Jobs API on the pod IP, not loopback
    "metrics-export-port": "8080",      # Ray's Prometheus metrics, where KubeRay's PodMonitors look
    "block": "true",                    # the head container lives as long as Ray does
}
"""What Brix writes into the head's rayStartParams when the template leaves them out."""
BOOLEAN_VALUED = ("log-color", "include-dashboard", "include-log-monitor")


def head_start_params(params: dict[str, str] | None) -> dict[str, str]:
    return {**HEAD_DEFAULTS, **{str(k): str(v) for k, v in (params or {}).items()}}


def ray_start_argv(params: dict[str, str], head: bool) -> list[str]:
    """The `ray start` command KubeRay runs in a Ray container for these rayStartParams."""
    argv = ["ray", "start"] + (["--head"] if head else [])
    for option in sorted(params):
        value = str(params[option])
        if value.lower() in ("true", "false") and option not in BOOLEAN_VALUED:
            if value.lower() == "true":
                argv.append(f"--{option}")
        else:
            argv.append(f"--{option}={value}")
    return argv


def name_prefix(replicaset: str) -> str:
    return replicaset[:MAX_NAME - 6].rstrip("-") + "-"


def raycluster_body(replicaset: str, replicaset_uid: str, namespace: str, template: dict[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    spec = copy.deepcopy(template.get("spec") or {})
    head = spec.setdefault("headGroupSpec", {})
    head["rayStartParams"] = head_start_params(head.get("rayStartParams"))
    pod_meta = head.setdefault("template", {}).setdefault("metadata", {})
    pod_meta["labels"] = {**labels, **(pod_meta.get("labels") or {})}
    body: dict[str, Any] = {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}", "kind": RAYCLUSTER_KIND,
        "metadata": {"generateName": name_prefix(replicaset), "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": RS_KIND, "name": replicaset,
                                          "uid": replicaset_uid, "controller": True, "blockOwnerDeletion": True}]},
        "spec": spec}
    if meta.get("annotations"):
        body["metadata"]["annotations"] = dict(meta["annotations"])
    return body


@dataclass(frozen=True)
class ClusterView:
    name: str
    uid: str = ""
    created: float = 0.0
    owner_uid: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    deleting: bool = False
    ready: bool = False
    ready_since: float | None = None
    failed: bool = False
    reason: str = ""
    deletion_cost: int = 0


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _cost(annotations: dict[str, Any]) -> int:
    for key in (DELETION_COST, POD_DELETION_COST):
        try:
            return int(annotations[key])
        except (KeyError, ValueError, TypeError):
            continue
    return 0


def cluster_view(body: dict[str, Any]) -> ClusterView:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    state = str(status.get("state") or "").lower()
    head, provisioned = _condition(status, "HeadPodReady"), _condition(status, "RayClusterProvisioned")
    suspended = state == "suspended" or (_condition(status, "RayClusterSuspended") or {}).get("status") == "True"
    if head is not None or provisioned is not None:
        ready = (head or {}).get("status") == "True" and (provisioned or {}).get("status") == "True"
        since = [parse_time(c.get("lastTransitionTime")) for c in (head, provisioned) if c is not None]
        ready_since = max((t for t in since if t is not None), default=None)
    else:
        ready = state == "ready"
        ready_since = parse_time((status.get("stateTransitionTimes") or {}).get("ready")) \
            or parse_time(status.get("lastUpdateTime"))
    ready = ready and not suspended
    return ClusterView(name=meta.get("name", ""), uid=meta.get("uid", ""),
                       created=parse_time(meta.get("creationTimestamp")) or 0.0, owner_uid=controller_uid(meta),
                       labels=tuple(sorted((meta.get("labels") or {}).items())),
                       deleting=bool(meta.get("deletionTimestamp")), ready=ready,
                       ready_since=ready_since if ready else None, failed=state == "failed",
                       reason=str(status.get("reason") or ""), deletion_cost=_cost(meta.get("annotations") or {}))
