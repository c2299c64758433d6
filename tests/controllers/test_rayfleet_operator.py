"""RayClusterFleet and RayClusterReplicaSet controllers in the operator, against the k8s_api emulator,
with tests/controllers/fake_kuberay.py playing KubeRay: scale up and down, a rolling update within
its surge, pause, rollback, a failed cluster replaced, the progress deadline, Recreate, and a
PodAutoscaler scaling a fleet through /scale."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from controllers.rayfleet.model import HASH_LABEL, REVISION, REVISION_HISTORY, ROLLBACK_TO
from tests.controllers.conftest import eventually, operator_settings, running_operator, text_endpoint
from tests.controllers.fake_kuberay import FakeKubeRay
from tests.controllers.fleets import FleetReader, fleet_body, image_of
from tests.k8s_api import K8sApi


@pytest.fixture
def fleets(k8s_api: K8sApi) -> FleetReader:
    return FleetReader(k8s_api.api_client, "default")


@pytest.fixture
def kuberay(k8s_api: K8sApi) -> Iterator[FakeKubeRay]:
    with FakeKubeRay(kubernetes.client.ApiClient(k8s_api.configuration), "default", delay=0.3) as fake:
        yield fake


async def test_a_fleet_scales_up_and_down(k8s_api: K8sApi, fleets: FleetReader, kuberay: FakeKubeRay) -> None:
    async with running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(replicas=2))
        await eventually(lambda: fleets.rolled_out(2, "v1"), "2 ready clusters", 20)
        rs = fleets.replicasets()
        assert len(rs) == 1 and rs[0]["metadata"]["annotations"][REVISION] == "1"
        cluster = fleets.clusters()[0]
        assert cluster["metadata"]["labels"][HASH_LABEL] == rs[0]["metadata"]["labels"][HASH_LABEL]
        assert cluster["metadata"]["ownerReferences"][0]["name"] == rs[0]["metadata"]["name"]
        head = cluster["spec"]["headGroupSpec"]
        assert head["template"]["metadata"]["labels"]["app"] == "llm"        # the /scale selector finds heads
        assert head["rayStartParams"] == {"num-cpus": "0", "dashboard-host": "0.0.0.0",
                                          "metrics-export-port": "8080", "block": "true"}
        fleets.patch({"spec": {"replicas": 5}})
        await eventually(lambda: fleets.rolled_out(5, "v1"), "5 ready clusters", 20)
        # scale down: a not-ready cluster goes first (here: the newest, not yet ready ones)
        fleets.patch({"spec": {"replicas": 1}})
        await eventually(lambda: fleets.rolled_out(1, "v1"), "1 cluster left", 20)
        assert len(fleets.replicasets()) == 1 and kuberay.live == 1
        assert fleets.condition("Available")["status"] == "True"
        assert fleets.condition("Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_a_rolling_update_stays_within_max_surge(k8s_api: K8sApi, fleets: FleetReader,
                                                       kuberay: FakeKubeRay) -> None:
    async with running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(replicas=4, strategy={"type": "RollingUpdate",
                                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        await eventually(lambda: fleets.rolled_out(4, "v1"), "4 ready clusters", 20)
        kuberay.reset_peak()
        template = fleets.fleet()["spec"]["template"]
        template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v2"
        fleets.patch({"spec": {"template": template}})
        await eventually(lambda: fleets.rolled_out(4, "v2"), "the rollout to v2", 30)
        assert kuberay.peak <= 5, f"{kuberay.peak} clusters at once > 4 + maxSurge 1"
        by_revision = {r["metadata"]["annotations"][REVISION]: r for r in fleets.replicasets()}
        assert sorted(by_revision) == ["1", "2"] and by_revision["1"]["spec"]["replicas"] == 0
        assert fleets.fleet()["metadata"]["annotations"][REVISION] == "2"


async def test_pause_then_rollback(k8s_api: K8sApi, fleets: FleetReader, kuberay: FakeKubeRay) -> None:
    async with running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(replicas=2))
        await eventually(lambda: fleets.rolled_out(2, "v1"), "2 ready clusters", 20)
        fleets.patch({"metadata": {"annotations": {"kubernetes.io/change-cause": "v2"}}})
        template = fleets.fleet()["spec"]["template"]
        template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v2"
        fleets.patch({"spec": {"template": template}})
        await eventually(lambda: fleets.rolled_out(2, "v2"), "the rollout to v2", 20)
        # paused: a new template waits, a new size does not
        fleets.patch({"spec": {"paused": True}})
        await eventually(lambda: fleets.condition("Progressing").get("reason") == "FleetPaused", "FleetPaused")
        template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v3"
        fleets.patch({"spec": {"template": template, "replicas": 3}})
        await eventually(lambda: fleets.images() == {"rayproject/ray:v2": 3}, "scaled while paused", 20)
        await asyncio.sleep(1.0)
        assert len(fleets.replicasets()) == 2 and fleets.images() == {"rayproject/ray:v2": 3}
        fleets.patch({"spec": {"paused": False}})
        await eventually(lambda: fleets.rolled_out(3, "v3"), "the rollout to v3 once resumed", 20)
        # roll back to the previous revision (v2, revision 2), as `kubectl rollout undo`
        fleets.patch({"metadata": {"annotations": {ROLLBACK_TO: "0"}}})
        await eventually(lambda: fleets.rolled_out(3, "v2"), "the rollback to v2", 20)
        fleet = fleets.fleet()
        assert image_of(fleet["spec"]["template"]) == "rayproject/ray:v2"
        assert ROLLBACK_TO not in fleet["metadata"]["annotations"]
        assert fleet["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v2"
        await eventually(lambda: fleets.fleet()["metadata"]["annotations"][REVISION] == "4", "revision 4")
        v2 = next(r for r in fleets.replicasets() if image_of(r["spec"]["template"]) == "rayproject/ray:v2")
        assert v2["metadata"]["annotations"][REVISION] == "4" and v2["metadata"]["annotations"][REVISION_HISTORY] == "2"


async def test_a_failed_cluster_is_replaced(k8s_api: K8sApi, fleets: FleetReader) -> None:
    fail_first = {"done": False}

    def fail(seen: Any) -> bool:
        if not fail_first["done"]:
            fail_first["done"] = True
            return True
        return False
    with FakeKubeRay(kubernetes.client.ApiClient(k8s_api.configuration), "default", delay=0.3, fail=fail) as kuberay:
        async with running_operator(k8s_api, operator_settings()):
            fleets.create(fleet_body(replicas=2))
            await eventually(lambda: fleets.rolled_out(2, "v1"), "2 ready clusters after a failure", 20)
            failed = [s for s in kuberay.clusters.values() if s.failed_at is not None]
            assert len(failed) == 1 and failed[0].gone_at is not None        # deleted ...
            assert len(kuberay.clusters) == 3                               # ... and replaced


async def test_a_stuck_rollout_hits_the_progress_deadline(k8s_api: K8sApi, fleets: FleetReader) -> None:
    with FakeKubeRay(kubernetes.client.ApiClient(k8s_api.configuration), "default",
                     delay=lambda i, n: 0.2 if i < 2 else 3600):
        async with running_operator(k8s_api, operator_settings()):
            fleets.create(fleet_body(replicas=2, progressDeadlineSeconds=3, minReadySeconds=0))
            await eventually(lambda: fleets.rolled_out(2, "v1"), "2 ready clusters", 20)
            template = fleets.fleet()["spec"]["template"]
            template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v2"
            fleets.patch({"spec": {"template": template}})
            await eventually(lambda: fleets.condition("Progressing").get("reason") == "ProgressDeadlineExceeded",
                             "Progressing False at the deadline", 20)
            cond = fleets.condition("Progressing")
            assert cond["status"] == "False" and "has timed out progressing" in cond["message"]
            assert fleets.condition("Available")["status"] == "True"        # the old clusters still serve


async def test_recreate_replaces_every_cluster_at_once(k8s_api: K8sApi, fleets: FleetReader,
                                                       kuberay: FakeKubeRay) -> None:
    async with running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(replicas=3, strategy={"type": "Recreate"}))
        await eventually(lambda: fleets.rolled_out(3, "v1"), "3 ready clusters", 20)
        kuberay.reset_peak()
        template = fleets.fleet()["spec"]["template"]
        template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v2"
        fleets.patch({"spec": {"template": template}})
        await eventually(lambda: fleets.rolled_out(3, "v2"), "the recreate to v2", 20)
        assert kuberay.peak == 3


async def test_an_invalid_fleet_is_reported(k8s_api: K8sApi, fleets: FleetReader) -> None:
    async with running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0,
                                                                                      "maxUnavailable": "0%"}}))
        await eventually(lambda: fleets.condition("Progressing").get("reason") == "InvalidSpec", "InvalidSpec")
        assert "may not both be 0" in fleets.condition("Progressing")["message"]
        assert fleets.replicasets() == []


async def test_a_podautoscaler_scales_a_fleet_through_scale(k8s_api: K8sApi, fleets: FleetReader,
                                                            kuberay: FakeKubeRay) -> None:
    """An external metric (a queue length for the whole model) of 30 with a target of 10 per cluster:
    HPA asks for 3 clusters through the fleet's /scale; at 10 it comes back to 1."""
    value = {"v": 30.0}
    async with text_endpoint("/metrics", lambda: f"queue_depth {value['v']}\n") as url, \
            running_operator(k8s_api, operator_settings()):
        fleets.create(fleet_body(replicas=1))
        await eventually(lambda: fleets.rolled_out(1, "v1"), "1 ready cluster", 20)
        scale = k8s_api.custom().get_namespaced_custom_object_scale(
            "orchestration.brix.dev", "v1alpha1", "default", "rayclusterfleets", "llm")
        assert scale["status"]["selector"] == "app=llm" and scale["spec"]["replicas"] == 1
        k8s_api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default",
                                                         "podautoscalers", _autoscaler(url))
        await eventually(lambda: fleets.rolled_out(3, "v1"), "scaled to 3 clusters by the PodAutoscaler", 30)
        value["v"] = 10.0
        await eventually(lambda: fleets.rolled_out(1, "v1"), "scaled back to 1", 30)


def _autoscaler(url: str) -> dict[str, Any]:
    return {"apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": "llm"},
            "spec": {"scaleTargetRef": {"apiVersion": "orchestration.brix.dev/v1alpha1", "kind": "RayClusterFleet",
                                        "name": "llm"},
                     "minReplicas": 1, "maxReplicas": 4, "scalingStrategy": "HPA", "syncPeriodSeconds": 1,
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                     "metricsSources": [{"type": "external", "url": url,
                                         "metric": "queue_depth", "targetValue": 10}]}}
