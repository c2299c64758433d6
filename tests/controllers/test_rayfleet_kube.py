"""RayClusterFleet on the real control plane (the `kube` fixture): the CRDs from deploy/crds refuse bad
specs naming the field and print like `kubectl get deployments`; `brix controllers` from
deploy/controllers (its own ServiceAccount and RBAC) runs fleets while tests/controllers/
fake_kuberay.py plays KubeRay: scale up and down (through /scale, as `kubectl scale` does), a
rolling update within maxSurge, pause, rollback, a failed cluster replaced, garbage collection of
replica sets and clusters by kube-controller-manager, and a PodAutoscaler scaling a fleet."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from aiohttp import web

from brix import procs
from brix.kube import manifests
from controllers.rayfleet.model import REVISION, ROLLBACK_TO
from tests.controllers.fake_kuberay import FakeKubeRay, Seen
from tests.controllers.fleets import FleetReader, fleet_body, image_of
from tests.http_apps import serving
from tests.kube import KubeNamespace

pytestmark = pytest.mark.kube


def apply_crds(kube: KubeNamespace) -> None:
    kube.cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "crds"))
    kube.cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "crds" / "kuberay"))
    for crd in ("rayclusterfleets.orchestration.brix.dev", "rayclusterreplicasets.orchestration.brix.dev",
                "rayclusters.ray.io", "podautoscalers.autoscaling.brix.dev"):
        kube.cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def start_operator(kube: KubeNamespace) -> None:
    """deploy/controllers as a platform engineer applies it (brix-system, its RBAC, leader election)."""
    apply_crds(kube)
    kube.cluster.kubectl("create", "namespace", "brix-system", check=False)
    kube.cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "controllers"))
    kube.cluster.kubectl("-n", "brix-system", "rollout", "status", "deployment/brix-controllers",
                         "--timeout=120s", timeout=130)


def set_image(fleets: FleetReader, image: str, **spec: Any) -> None:
    template = fleets.fleet()["spec"]["template"]
    template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = f"rayproject/ray:{image}"
    fleets.patch({"spec": {"template": template, **spec}})


@pytest.fixture
def fleets(kube: KubeNamespace) -> FleetReader:
    return FleetReader(kube.api, kube.namespace)


def test_the_crds_refuse_bad_fleets_naming_the_field(kube: KubeNamespace) -> None:
    apply_crds(kube)
    rolling = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    cases = [({"strategy": rolling}, "maxSurge and maxUnavailable may not both be 0"),
             ({"strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}}, "must not be more than 100%"),
             ({"strategy": {"rollingUpdate": {"maxSurge": "x"}}}, "maxSurge must be an integer >= 0 or a percentage"),
             ({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
              "rollingUpdate may not be given when spec.strategy.type is Recreate"),
             ({"selector": {"matchLabels": {"app": "other"}}}, "must match spec.selector.matchLabels"),
             ({"minReadySeconds": 30, "progressDeadlineSeconds": 10}, "must be greater than spec.minReadySeconds"),
             ({"replicas": -1}, "spec.replicas")]
    for change, message in cases:
        body = fleet_body(name="bad")
        body["spec"].update(change)
        out = kube.kubectl("apply", "-f", "-", stdin=json.dumps(body), check=False)
        assert out.returncode != 0 and message in out.stderr, (change, out.stderr)
    out = kube.kubectl("apply", "-f", "-", stdin=json.dumps(fleet_body(name="9llm")), check=False)
    assert out.returncode != 0 and "must be a DNS-1035 label" in out.stderr, out.stderr
    minimal = fleet_body(name="good")
    del minimal["spec"]["replicas"]
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(minimal))
    got = kube.get_json("rayclusterfleets.orchestration.brix.dev/good")["spec"]             # the schema's defaults
    assert (got["replicas"], got["strategy"], got["revisionHistoryLimit"], got["progressDeadlineSeconds"]) == \
        (1, {"type": "RollingUpdate"}, 10, 600)
    out = kube.kubectl("patch", "rcf/good", "--type=merge", "-p", '{"spec":{"selector":{"matchLabels":{"x":"y"}}}}',
                       check=False)
    assert out.returncode != 0 and "spec.selector is immutable" in out.stderr, out.stderr
    header = kube.kubectl("get", "rcf").stdout.splitlines()[0].split()
    assert header == ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "READY", "AVAILABLE", "AGE"]


def test_a_fleet_through_its_lifecycle(kube: KubeNamespace, fleets: FleetReader) -> None:
    start_operator(kube)
    failing = {"index": -1}

    def fail(seen: Seen) -> bool:
        return seen.index == failing["index"]
    with FakeKubeRay(kube.api, kube.namespace, delay=0.5, fail=fail) as kuberay:
        fleets.create(fleet_body(replicas=2, strategy={"type": "RollingUpdate",
                                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        kube.wait_for("2 ready clusters", lambda: fleets.rolled_out(2, "v1"), 60)
        kube.kubectl("scale", "rayclusterfleet/llm", "--replicas=4")         # through /scale
        kube.wait_for("4 ready clusters", lambda: fleets.rolled_out(4, "v1"), 60)
        kube.kubectl("scale", "rayclusterfleet/llm", "--replicas=3")
        kube.wait_for("3 clusters", lambda: fleets.rolled_out(3, "v1"), 60)
        # a rolling update: never more than 3 + maxSurge 1 clusters
        kuberay.reset_peak()
        set_image(fleets, "v2")
        kube.wait_for("the rollout to v2", lambda: fleets.rolled_out(3, "v2"), 90)
        assert kuberay.peak <= 4, kuberay.peak
        printed = kube.kubectl("get", "rcf", "llm", "--no-headers").stdout.split()
        assert printed[1:6] == ["3", "3", "3", "3", "3"], printed
        # paused: scaled, not rolled out
        fleets.patch({"spec": {"paused": True}})
        kube.wait_for("FleetPaused", lambda: fleets.condition("Progressing").get("reason") == "FleetPaused", 30)
        set_image(fleets, "v3", replicas=4)
        kube.wait_for("4 clusters on v2 while paused", lambda: fleets.images() == {"rayproject/ray:v2": 4}, 60)
        fleets.patch({"spec": {"paused": False}})
        kube.wait_for("the rollout to v3", lambda: fleets.rolled_out(4, "v3"), 90)
        # rollback to the previous revision, as `kubectl rollout undo`
        fleets.patch({"metadata": {"annotations": {ROLLBACK_TO: ""}}})
        kube.wait_for("the rollback to v2", lambda: fleets.rolled_out(4, "v2"), 90)
        fleet = fleets.fleet()
        assert image_of(fleet["spec"]["template"]) == "rayproject/ray:v2" and ROLLBACK_TO not in fleet["metadata"]["annotations"]
        assert fleet["metadata"]["annotations"][REVISION] == "4"
        # a cluster KubeRay reports failed is deleted and replaced
        failing["index"] = len(kuberay.clusters)
        kube.kubectl("scale", "rayclusterfleet/llm", "--replicas=5")
        kube.wait_for("5 ready clusters after a failure", lambda: fleets.rolled_out(5, "v2"), 60)
        failed = [s for s in kuberay.clusters.values() if s.failed_at is not None]
        assert len(failed) == 1 and failed[0].gone_at is not None
        # deleting the fleet: kube-controller-manager's garbage collector removes replica sets and clusters
        kube.kubectl("delete", "rayclusterfleet/llm")
        kube.wait_for("replica sets and clusters collected",
                      lambda: not fleets.replicasets() and not fleets.clusters(), 60)


def test_a_podautoscaler_scales_a_fleet(kube: KubeNamespace, fleets: FleetReader) -> None:
    start_operator(kube)
    value = {"v": 30.0}
    port = procs.free_port()
    ready, stop = threading.Event(), threading.Event()

    def serve() -> None:
        async def main() -> None:
            async def metrics(_: web.Request) -> web.Response:
                return web.Response(text=f"queue_depth {value['v']}\n")
            app = web.Application()
            app.router.add_get("/metrics", metrics)
            async with serving(app, port=port):
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.1)
        asyncio.run(main())
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert ready.wait(10)
    try:
        with FakeKubeRay(kube.api, kube.namespace, delay=0.5):
            fleets.create(fleet_body(replicas=1))
            kube.wait_for("1 ready cluster", lambda: fleets.rolled_out(1, "v1"), 60)
            pa = {"apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": "llm"},
                  "spec": {"scaleTargetRef": {"apiVersion": "orchestration.brix.dev/v1alpha1",
                                              "kind": "RayClusterFleet", "name": "llm"},
                           "minReplicas": 1, "maxReplicas": 4, "scalingStrategy": "HPA", "syncPeriodSeconds": 1,
                           "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                           "metricsSources": [{"type": "external", "url": f"http://127.0.0.1:{port}/metrics",
                                               "metric": "queue_depth", "targetValue": 10}]}}
            kube.kubectl("apply", "-f", "-", stdin=json.dumps(pa))
            kube.wait_for("3 clusters for a queue of 30", lambda: fleets.rolled_out(3, "v1"), 60)
            value["v"] = 10.0
            kube.wait_for("back to 1 cluster", lambda: fleets.rolled_out(1, "v1"), 60)
            decisions = kube.get_json("podautoscalers.autoscaling.brix.dev/llm")["status"]["lastDecisions"]
            assert decisions[0]["from"] == 1 and decisions[0]["to"] == 3
    finally:
        stop.set()
        server.join(10)
