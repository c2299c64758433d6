"""A fleet, its replica sets and their RayClusters simulated in memory around the pure controllers
(controllers/rayfleet/fleet.py and replicaset.py), with KubeRay played by per-cluster delays.

Each step does one thing a real cluster would: the fleet controller syncs, one replica-set
controller syncs, or a second passes (clusters whose delay is over turn ready). Which one comes
next is drawn from a seeded Random, so statuses lag their specs in every order a watch-driven
operator can see them. After each step the checker sees the real cluster count and availability.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controllers.conditions import iso
from controllers.rayfleet import fleet as fleetlib
from controllers.rayfleet import replicaset as rslib
from controllers.rayfleet.model import fleet_view, replicaset_view
from controllers.rayfleet.raycluster import ClusterView

T0 = 1_700_000_000.0


def template(version: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "llm"}},
            "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
                {"name": "ray-head", "image": f"vllm:{version}"}]}}}}}


@dataclass
class SimCluster:
    name: str
    rs: str
    created: float
    ready_at: float
    failed: bool = False

    def view(self, rs_uid: str, now: float) -> ClusterView:
        ready = not self.failed and now >= self.ready_at
        return ClusterView(self.name, created=self.created, owner_uid=rs_uid, ready=ready,
                           ready_since=self.ready_at if ready else None, failed=self.failed)


@dataclass
class Sim:
    spec: dict[str, Any]
    rng: random.Random
    delay: Callable[[random.Random], float] = lambda r: float(r.randint(2, 10))
    now: float = T0
    fleet: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, SimCluster] = field(default_factory=dict)
    serial: int = 0
    peak: int = 0

    def __post_init__(self) -> None:
        self.fleet = {"metadata": {"name": "llm", "namespace": "default", "uid": "fleet-uid", "generation": 1,
                                   "annotations": {}},
                      "spec": copy.deepcopy(self.spec), "status": {}}

    # -- the fleet controller -----------------------------------------------------------------
    def sync_fleet(self) -> fleetlib.FleetPlan:
        view = fleet_view(self.fleet)
        plan = fleetlib.plan(view, [replicaset_view(b) for b in self.rss.values()], self.now)
        if plan.create is not None:
            body = copy.deepcopy(plan.create)
            self.serial += 1
            body["metadata"].update(uid=f"rs-{self.serial}", generation=1, creationTimestamp=iso(self.now))
            body["status"] = {}
            self.rss[body["metadata"]["name"]] = body
        for u in plan.updates:
            rs = self.rss[u.name]
            rs["metadata"].setdefault("annotations", {}).update(u.annotations)
            if u.replicas is not None and u.replicas != rs["spec"]["replicas"]:
                rs["spec"]["replicas"] = u.replicas
                rs["metadata"]["generation"] += 1
            if u.min_ready_s is not None:
                rs["spec"]["minReadySeconds"] = u.min_ready_s
        for name in plan.deletes:
            assert not any(c.rs == name for c in self.clusters.values()), f"deleted {name} with clusters left"
            del self.rss[name]
        self.fleet["metadata"]["annotations"].update(plan.fleet_annotations)
        if plan.rollback is not None:
            if plan.rollback.template is not None:
                self.fleet["spec"]["template"] = plan.rollback.template
                self.fleet["metadata"]["generation"] += 1
            self.fleet["metadata"]["annotations"] = dict(plan.rollback.annotations)
        if plan.status is not None:
            self.fleet["status"] = plan.status
        return plan

    # -- a replica-set controller ---------------------------------------------------------------
    def sync_rs(self, name: str) -> None:
        rs = self.rss[name]
        uid = rs["metadata"]["uid"]
        mine = [c for c in self.clusters.values() if c.rs == name]
        views = [c.view(uid, self.now) for c in mine]
        plan = rslib.reconcile(int(rs["spec"]["replicas"]), views)
        for cname in plan.delete:
            del self.clusters[cname]
        for _ in range(plan.create):
            self.serial += 1
            cname = f"{name}-{self.serial}"
            self.clusters[cname] = SimCluster(cname, name, self.now, self.now + self.delay(self.rng))
        self.peak = max(self.peak, len(self.clusters))
        mine = [c.view(uid, self.now) for c in self.clusters.values() if c.rs == name]
        status, _ = rslib.summarize(rs["metadata"]["generation"], int(rs["spec"].get("minReadySeconds") or 0), mine,
                                    self.now, rs["status"].get("conditions") or [], None)
        rs["status"] = status

    # -- driving ------------------------------------------------------------------------------------
    def step(self) -> str:
        choices = ["fleet", "tick"] + [f"rs:{n}" for n in self.rss]
        what = self.rng.choice(choices)
        if what == "fleet":
            self.sync_fleet()
        elif what == "tick":
            self.now += 1.0
        else:
            self.sync_rs(what[3:])
        return what

    def settle(self, max_steps: int = 20_000, check: Callable[[Sim], None] | None = None) -> int:
        for i in range(max_steps):
            if self.done():
                return i
            self.step()
            if check is not None:
                check(self)
        raise AssertionError(f"not done after {max_steps} steps: {self.describe()}")

    def set_template(self, t: dict[str, Any]) -> None:
        self.fleet["spec"]["template"] = t
        self.fleet["metadata"]["generation"] += 1

    def ready_clusters(self) -> int:
        return sum(1 for c in self.clusters.values() if not c.failed and self.now >= c.ready_at)

    def done(self) -> bool:
        view = fleet_view(self.fleet)
        assert view.spec is not None, view.spec_error
        new = fleetlib.find_new(view.spec.template, [replicaset_view(b) for b in self.rss.values()])
        if new is None:
            return False
        replicas = view.spec.replicas
        others = [b for n, b in self.rss.items() if n != new.name]
        live = [c for c in self.clusters.values() if c.rs == new.name and not c.failed]
        status = self.fleet.get("status") or {}
        return (new.replicas == replicas and len(live) == replicas and all(self.now >= c.ready_at for c in live)
                and all(b["spec"]["replicas"] == 0 for b in others)
                and not any(c.rs != new.name for c in self.clusters.values())
                and status.get("updatedReplicas") == replicas and status.get("availableReplicas") == replicas
                and status.get("replicas") == replicas
                and status.get("observedGeneration") == self.fleet["metadata"]["generation"])

    def describe(self) -> str:
        rss = {n: (b["spec"]["replicas"], b["status"].get("replicas"), b["status"].get("availableReplicas"))
               for n, b in self.rss.items()}
        return f"t={self.now - T0:.0f} rss(spec, status, available)={rss} clusters={len(self.clusters)}"
