"""One sync of a RayClusterFleet (pure): the Deployment controller's syncDeployment over replica sets
of RayClusters. `plan(fleet, replica_sets, now)` returns what to write; nothing here reads a clock.

Order, as upstream: an invalid spec only reports itself; paused conditions; a paused fleet (or one
whose replica count changed: a scaling event) is only scaled, proportionally across its replica
sets; a rollback request restores an old template; otherwise the strategy runs (RollingUpdate:
scale the new replica set up within maxSurge, else the old ones down within maxUnavailable;
Recreate: old ones to zero, wait until their clusters are gone, then the new one up), old replica
sets past revisionHistoryLimit are deleted once the rollout is complete, and the status and its
Progressing condition are computed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from controllers.rayfleet import history, progress, rollout
from controllers.rayfleet.hashing import equal_ignore_hash, template_hash
from controllers.rayfleet.model import (
    API_VERSION,
    FLEET_KIND,
    HASH_LABEL,
    REVISION,
    ROLLBACK_TO,
    RS_KIND,
    FleetSpec,
    FleetView,
    ReplicaSetView,
)


@dataclass(frozen=True)
class ReplicaSetUpdate:
    """A change to one existing replica set: its size, annotations and minReadySeconds (None = as is)."""

    name: str
    resource_version: str
    replicas: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    min_ready_s: int | None = None


@dataclass
class FleetPlan:
    create: dict[str, Any] | None = None          # a new replica set's body
    updates: list[ReplicaSetUpdate] = field(default_factory=list)   # scale-downs before scale-ups
    deletes: list[str] = field(default_factory=list)               # history beyond revisionHistoryLimit
    fleet_annotations: dict[str, str] = field(default_factory=dict)  # e.g. the revision
    rollback: history.Rollback | None = None
    status: dict[str, Any] | None = None          # None: unchanged
    requeue_after: float | None = None
    new_rs: str | None = None


def owned(fleet: FleetView, rss: list[ReplicaSetView]) -> list[ReplicaSetView]:
    return [r for r in rss if r.owner_uid == fleet.uid]


def find_new(template: dict[str, Any], rss: list[ReplicaSetView]) -> ReplicaSetView | None:
    """deploymentutil.FindNewReplicaSet: the oldest replica set with the fleet's template."""
    return next((r for r in rollout.by_creation(rss) if equal_ignore_hash(r.template, template)), None)


def replicaset_body(fleet: FleetView, spec: FleetSpec, name: str, hash_: str, replicas: int,
                    annotations: dict[str, str]) -> dict[str, Any]:
    template = copy.deepcopy(spec.template)
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: hash_}
    selector = spec.selector.with_label(HASH_LABEL, hash_)
    return {"apiVersion": API_VERSION, "kind": RS_KIND,
            "metadata": {"name": name, "namespace": fleet.namespace, "labels": dict(meta["labels"]),
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": API_VERSION, "kind": FLEET_KIND, "name": fleet.name,
                                              "uid": fleet.uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"replicas": replicas, "minReadySeconds": spec.min_ready_s, "selector": selector.to_json(),
                     "template": template}}


class _Sync:
    """The working state of one sync: copies of the replica sets, changed in place as upstream does."""

    def __init__(self, fleet: FleetView, spec: FleetSpec, rss: list[ReplicaSetView], now: float) -> None:
        self.fleet, self.spec, self.now = fleet, spec, now
        self.before = {r.name: copy.deepcopy(r) for r in rss}
        self.rss = [copy.deepcopy(r) for r in rss]
        self.status = copy.deepcopy(fleet.status)
        self.status["selector"] = spec.selector.to_string()
        self.plan = FleetPlan()
        self.actions: list[rollout.ScaleAction] = []

    # -- getAllReplicaSetsAndSyncRevision ------------------------------------------------------
    def new_and_old(self, create: bool) -> tuple[ReplicaSetView | None, list[ReplicaSetView]]:
        spec, fleet = self.spec, self.fleet
        new = find_new(spec.template, self.rss)
        olds = [r for r in self.rss if r is not new]
        revision = history.max_revision(olds) + 1
        if new is not None:
            history.set_new_replica_set_annotations(spec, fleet.annotations, new, revision, exists=True)
            new.min_ready_s = spec.min_ready_s
            self._fleet_revision(new.annotations.get(REVISION, str(revision)))
            if spec.progress_deadline_s is not None and progress.get_condition(self.status, progress.PROGRESSING) is None:
                progress.set_condition(self.status, progress.new_condition(
                    progress.PROGRESSING, "True", progress.RS_FOUND, f"Found new replica set {new.name!r}", self.now))
            return new, olds
        if not create:
            return None, olds
        collisions = int(self.status.get("collisionCount") or 0)
        hash_ = template_hash(spec.template, collisions)
        name = f"{fleet.name}-{hash_}"
        if any(r.name == name for r in self.rss):    # same name, other template: a hash collision
            self.status["collisionCount"] = collisions + 1
            return None, olds
        rs = ReplicaSetView(name=name, uid="", created=self.now + 1e6, template={}, planned=True,
                            min_ready_s=spec.min_ready_s, owner_uid=fleet.uid)
        history.set_new_replica_set_annotations(spec, fleet.annotations, rs, revision, exists=False)
        rs.replicas = rollout.new_rs_new_replicas(spec, [*olds, rs], rs)
        body = replicaset_body(fleet, spec, name, hash_, rs.replicas, dict(rs.annotations))
        rs.template = body["spec"]["template"]
        self.rss.append(rs)
        self.plan.create = body
        self._fleet_revision(str(revision))
        if spec.progress_deadline_s is not None:
            progress.set_condition(self.status, progress.new_condition(
                progress.PROGRESSING, "True", progress.RS_CREATED, f"Created new replica set {name!r}", self.now))
        return rs, olds

    def _fleet_revision(self, revision: str) -> None:
        if self.fleet.annotations.get(REVISION) != revision:
            self.plan.fleet_annotations[REVISION] = revision

    # -- results ----------------------------------------------------------------------------------
    def finish(self, status: dict[str, Any], requeue: float | None = None) -> FleetPlan:
        downs, ups = [], []
        for rs in self.rss:
            if rs.planned:
                continue
            was = self.before[rs.name]
            annotations = {k: v for k, v in rs.annotations.items() if was.annotations.get(k) != v}
            replicas = rs.replicas if rs.replicas != was.replicas else None
            min_ready = rs.min_ready_s if rs.min_ready_s != was.min_ready_s else None
            if replicas is None and not annotations and min_ready is None:
                continue
            update = ReplicaSetUpdate(rs.name, rs.resource_version, replicas, annotations, min_ready)
            (downs if replicas is not None and replicas < was.replicas else ups).append(update)
        self.plan.updates = downs + ups
        self.plan.status = status if status != self.fleet.status else None
        self.plan.requeue_after = requeue
        new = find_new(self.spec.template, self.rss)
        self.plan.new_rs = new.name if new is not None else None
        return self.plan

    def rollout_status(self, new: ReplicaSetView | None) -> FleetPlan:
        status, requeue = progress.sync_rollout_status(self.spec, self.fleet.name, self.fleet.generation,
                                                       self.fleet.status, self.status, self.rss, new, self.now)
        return self.finish(status, requeue)

    def plain_status(self, new: ReplicaSetView | None) -> FleetPlan:
        return self.finish(progress.calculate_status(self.spec, self.fleet.generation, self.status, self.rss, new,
                                                     self.now))

    def cleanup(self, olds: list[ReplicaSetView]) -> None:
        self.plan.deletes = history.cleanup(self.spec, olds)

    # -- the strategies ---------------------------------------------------------------------------------
    def sync(self) -> FleetPlan:
        """dc.sync: scale only (paused fleets and scaling events), then the plain status."""
        new, olds = self.new_and_old(create=False)
        rollout.scale(self.spec, new, olds, int(self.fleet.status.get("replicas") or 0), self.actions)
        if self.spec.paused and ROLLBACK_TO not in self.fleet.annotations:
            self.cleanup(olds)
        return self.plain_status(new)

    def rolling(self) -> FleetPlan:
        new, olds = self.new_and_old(create=True)
        if new is None:    # a hash collision: try again with the next collisionCount
            return self.finish(progress.calculate_status(self.spec, self.fleet.generation, self.status, self.rss,
                                                         None, self.now), 0.0)
        all_rss = [*olds, new]
        if rollout.reconcile_new_replica_set(self.spec, all_rss, new, self.actions):
            return self.rollout_status(new)
        if rollout.reconcile_old_replica_sets(self.spec, all_rss, rollout.active(olds), new, self.actions):
            return self.rollout_status(new)
        if progress.complete(self.spec, self.fleet.generation, self.fleet.status):
            self.cleanup(olds)
        return self.rollout_status(new)

    def recreate(self) -> FleetPlan:
        new, olds = self.new_and_old(create=False)
        if rollout.scale_down_old_for_recreate(self.spec, rollout.active(olds), self.actions):
            return self.rollout_status(new)
        if rollout.old_clusters_running(olds):
            return self.rollout_status(new)
        if new is None:
            new, olds = self.new_and_old(create=True)
            if new is None:
                return self.rollout_status(None)
        if not new.planned:
            rollout.scale_and_record(new, self.spec.replicas, self.spec, self.actions)
        if progress.complete(self.spec, self.fleet.generation, self.fleet.status):
            self.cleanup(olds)
        return self.rollout_status(new)

    def rollback(self) -> FleetPlan:
        new, olds = self.new_and_old(create=True)
        self.plan.rollback = history.rollback(self.spec.template, self.fleet.annotations, olds + ([new] if new else []))
        return self.finish(self.status)


def plan(fleet: FleetView, rss: list[ReplicaSetView], now: float) -> FleetPlan:
    """What one sync of `fleet` writes, given every replica set of its namespace (only those it owns
    count) and the wall-clock time `now`."""
    if fleet.spec is None:
        status = copy.deepcopy(fleet.status)
        cond = progress.get_condition(status, progress.PROGRESSING)
        if cond is None or cond.get("reason") != progress.INVALID_SPEC or cond.get("message") != fleet.spec_error:
            progress.remove_condition(status, progress.PROGRESSING)
            progress.set_condition(status, progress.new_condition(progress.PROGRESSING, "False", progress.INVALID_SPEC,
                                                                  fleet.spec_error or "invalid spec", now))
        status["observedGeneration"] = fleet.generation
        return FleetPlan(status=status if status != fleet.status else None)
    s = _Sync(fleet, fleet.spec, owned(fleet, rss), now)
    if fleet.deleting:
        new, _ = s.new_and_old(create=False)
        s.plan.fleet_annotations.clear()
        return s.plain_status(new)
    progress.paused_conditions(fleet.spec, s.status, now)
    if fleet.spec.paused:
        return s.sync()
    if ROLLBACK_TO in fleet.annotations:
        return s.rollback()
    new = find_new(fleet.spec.template, s.rss)
    if rollout.is_scaling_event(fleet.spec, [r for r in s.rss if r is not new] + [new]):
        return s.sync()
    if fleet.spec.strategy == "Recreate":
        return s.recreate()
    return s.rolling()
