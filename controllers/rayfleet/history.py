"""Revisions of a fleet (pure): the revision annotations of its replica sets and of the fleet, the
revision history kept to revisionHistoryLimit, and rollback to an old template.

As Deployments: the replica set of the current template carries the highest revision; a
rollback copies an old replica set's template (without the hash label) and its annotations back
into the fleet (what `kubectl rollout undo` does), after which that replica set is the new one
again and takes the next revision, its old numbers kept in revision-history.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controllers.rayfleet.hashing import equal_ignore_hash
from controllers.rayfleet.model import (
    HASH_LABEL,
    REVISION,
    REVISION_HISTORY,
    ROLLBACK_TO,
    SKIPPED_ANNOTATIONS,
    FleetSpec,
    ReplicaSetView,
    revision_of,
)
from controllers.rayfleet.rollout import max_surge, set_replicas_annotations

REVISION_HISTORY_CHARS = 2000   # maxRevHistoryLengthInChars of the Deployment controller


def max_revision(rss: Sequence[ReplicaSetView]) -> int:
    return max((r.revision for r in rss), default=0)


def last_revision(rss: Sequence[ReplicaSetView]) -> int:
    """deploymentutil.LastRevision: the second highest revision (the one before the current)."""
    top = second = 0
    for r in rss:
        v = r.revision
        if v >= top:
            top, second = v, top
        elif v > second:
            second = v
    return second


def copy_fleet_annotations(fleet_annotations: dict[str, str], rs: ReplicaSetView) -> bool:
    """The fleet's annotations onto its new replica set (the skipped ones excepted); True when any changed."""
    changed = False
    for k, v in fleet_annotations.items():
        if k in SKIPPED_ANNOTATIONS or rs.annotations.get(k) == v:
            continue
        rs.annotations[k] = v
        changed = True
    return changed


def set_new_replica_set_annotations(spec: FleetSpec, fleet_annotations: dict[str, str], rs: ReplicaSetView,
                                    new_revision: int, exists: bool) -> bool:
    """deploymentutil.SetNewReplicaSetAnnotations."""
    changed = copy_fleet_annotations(fleet_annotations, rs)
    had = REVISION in rs.annotations
    old = rs.revision
    if old < new_revision:
        rs.annotations[REVISION] = str(new_revision)
        changed = True
        if had:      # rolled back to this replica set: keep its old numbers
            history = [h for h in rs.annotations.get(REVISION_HISTORY, "").split(",") if h] + [str(old)]
            while history and len(",".join(history)) > REVISION_HISTORY_CHARS:
                history.pop(0)
            rs.annotations[REVISION_HISTORY] = ",".join(history)
    if not exists and set_replicas_annotations(rs, spec.replicas, spec.replicas + max_surge(spec)):
        changed = True
    return changed


def cleanup(spec: FleetSpec, old_rss: Sequence[ReplicaSetView]) -> list[str]:
    """dc.cleanupDeployment: names of old replica sets to delete beyond revisionHistoryLimit, oldest
    revision first, only those scaled to zero that have reported it."""
    alive = [r for r in old_rss if not r.deleting and not r.planned]
    diff = len(alive) - spec.revision_history_limit
    if diff <= 0:
        return []
    out = []
    for rs in sorted(alive, key=lambda r: (r.revision, r.created, r.name))[:diff]:
        if rs.status_replicas != 0 or rs.replicas != 0 or rs.generation > rs.observed_generation \
                or rs.terminating != 0:
            continue
        out.append(rs.name)
    return out


@dataclass(frozen=True)
class Rollback:
    """What a rollback request comes to: a patch of the fleet (template and annotations restored,
    the request removed), or only the request removed with the reason why nothing was rolled back."""

    revision: int
    template: dict[str, Any] | None        # None: the template stays
    annotations: dict[str, str]            # the fleet's annotations after the rollback
    outcome: str                           # RolledBack | RollbackTemplateUnchanged | RollbackRevisionNotFound


def rollback(fleet_template: dict[str, Any], fleet_annotations: dict[str, str],
             all_rss: Sequence[ReplicaSetView]) -> Rollback:
    """dc.rollback / rollbackToTemplate for the fleet's rollback-to annotation."""
    raw = fleet_annotations.get(ROLLBACK_TO, "").strip()
    remaining = {k: v for k, v in fleet_annotations.items() if k != ROLLBACK_TO}
    try:
        target = int(raw or 0)
    except ValueError:
        return Rollback(0, None, remaining, "RollbackRevisionNotFound")
    if target == 0:
        target = last_revision(all_rss)
        if target == 0:
            return Rollback(0, None, remaining, "RollbackRevisionNotFound")
    rs = next((r for r in all_rss if revision_of(r.annotations) == target), None)
    if rs is None:
        return Rollback(target, None, remaining, "RollbackRevisionNotFound")
    if equal_ignore_hash(rs.template, fleet_template):
        return Rollback(target, None, remaining, "RollbackTemplateUnchanged")
    template = copy.deepcopy(rs.template)
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    # SetDeploymentAnnotationsTo: the fleet keeps its own skipped annotations, takes the rest from the
    # replica set (e.g. kubernetes.io/change-cause of that revision)
    annotations = {k: v for k, v in remaining.items() if k in SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in rs.annotations.items() if k not in SKIPPED_ANNOTATIONS})
    return Rollback(target, template, annotations, "RolledBack")
