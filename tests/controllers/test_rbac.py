"""deploy/controllers' RBAC is what `brix controllers` calls, run as deploy/ runs it (its own token,
--all-namespaces, leader election in brix-system): no call is refused and no grant goes unused."""

from __future__ import annotations

from pathlib import Path

from brix import procs
from tests.foundation.test_deploy_manifests import DEPLOY, render
from tests.foundation.test_deploy_rbac import calls, compare, kubeconfig, rules_of, wait_for
from tests.k8s_api import K8sApi

LABELS = {"app": "llama"}
TEMPLATE = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "engine", "image": "brix"}]}}


class ResourceRequests:
    """The emulator's request log without discovery reads (/api, /apis, /apis/GROUP/VERSION), which
    every authenticated user may make (system:discovery); `calls` reads only `.kmock`."""

    def __init__(self, api: K8sApi) -> None:
        def is_resource(path: str) -> bool:
            parts = [p for p in path.split("/") if p]
            return len(parts) > (2 if parts[:1] == ["api"] else 3)
        self.kmock = [r for r in list(api.kmock) if is_resource(r.url.path)]


def operator_calls(api: K8sApi, token: str) -> set[tuple[str, str, str, str | None, str | None]]:
    return calls(ResourceRequests(api), token)  # type: ignore[arg-type]


def autoscaler(api: K8sApi, name: str, kind: str) -> None:
    api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers", {
        "apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": name}, "minReplicas": 2,
                 "maxReplicas": 4, "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_waiting",
                                                       "targetValue": 4}]}})


def lora_engine(api: K8sApi, brix_process) -> str:  # type: ignore[no-untyped-def]
    """An engine-mock standing in for a Ready engine pod of the emulator; returns its URL."""
    port = procs.free_port()
    brix_process("engine", "engine-mock", "--port", str(port), "--model", "llama",
                 ready_url=f"http://127.0.0.1:{port}/health")
    core = api.core_v1()
    core.create_namespaced_pod("default", {"metadata": {"name": "engine", "labels": {
        "app": "lora", "model.brix.dev/name": "llama", "model.brix.dev/port": str(port)}},
        "spec": {"containers": [{"name": "engine", "image": "brix"}]}})
    core.patch_namespaced_pod_status("engine", "default", {"status": {
        "phase": "Running", "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}})
    return f"http://127.0.0.1:{port}"


def kvcache_created_then_changed(api: K8sApi, token: str) -> None:
    """A managed-Redis KVCache: its four objects are created (get, create), then a spec change patches
    all of them (StatefulSet replicas, both Services' ports, the Redis image) and its status."""
    custom = api.custom()
    group = ("orchestration.brix.dev", "v1alpha1", "default", "kvcaches")
    custom.create_namespaced_custom_object(*group, {
        "apiVersion": "orchestration.brix.dev/v1alpha1", "kind": "KVCache", "metadata": {"name": "pool"},
        "spec": {"mode": "distributed", "replicas": 1, "metadata": {"redis": {"managed": True}}}})
    apps, core = api.apps_v1(), api.core_v1()

    def objects() -> bool:
        try:
            apps.read_namespaced_stateful_set("pool", "default")
            apps.read_namespaced_deployment("pool-redis", "default")
            core.read_namespaced_service("pool", "default")
            core.read_namespaced_service("pool-redis", "default")
        except Exception:  # noqa: BLE001 - not there yet
            return False
        return True
    wait_for(objects, "the operator never created the KVCache's StatefulSet, Services and Redis", timeout=30)
    custom.patch_namespaced_custom_object(*group, "pool", {"spec": {
        "replicas": 2, "service": {"port": 9700}, "metadata": {"redis": {"managed": True, "image": "redis:7.4"}}}})
    wanted = {("apps", "statefulsets", "patch"), ("apps", "deployments", "patch"), ("", "services", "patch"),
              ("orchestration.brix.dev", "kvcaches/status", "patch")}
    wait_for(lambda: wanted <= {c[:3] for c in operator_calls(api, token)},
             "the operator never patched the KVCache's objects after a spec change", timeout=30)


def fleet_scaled_and_rolled_out(api: K8sApi, token: str) -> None:
    """A RayClusterFleet (KubeRay played by tests/controllers/fake_kuberay.py): a PodAutoscaler with
    minReplicas 2 scales it through /scale (get, patch), its replica set is created and scaled, its
    RayClusters created; a new template rolls it out (clusters deleted) and, with
    revisionHistoryLimit 0, the old replica set is deleted; a rollback patches the fleet."""
    import kubernetes.client

    from tests.controllers.fake_kuberay import FakeKubeRay
    from tests.controllers.fleets import FleetReader, fleet_body

    fleets = FleetReader(api.api_client, "default")
    with FakeKubeRay(kubernetes.client.ApiClient(api.configuration), "default", delay=0.1):
        fleets.create(fleet_body(replicas=1, revisionHistoryLimit=0))
        api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers", {
            "apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": "fleet"},
            "spec": {"scaleTargetRef": {"apiVersion": "orchestration.brix.dev/v1alpha1", "kind": "RayClusterFleet",
                                        "name": "llm"}, "minReplicas": 2, "maxReplicas": 4,
                     "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_waiting", "targetValue": 4}]}})
        wait_for(lambda: fleets.rolled_out(2, "v1"), "the fleet never reached 2 ready clusters", timeout=30)
        template = fleets.fleet()["spec"]["template"]
        template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] = "rayproject/ray:v2"
        fleets.patch({"spec": {"template": template}})
        wait_for(lambda: fleets.rolled_out(2, "v2") and len(fleets.replicasets()) == 1,
                 "the fleet never rolled out to v2 and dropped its old replica set", timeout=30)
        fleets.patch({"metadata": {"annotations": {"orchestration.brix.dev/rollback-to": "9"}}})
        wait_for(lambda: "orchestration.brix.dev/rollback-to" not in fleets.fleet()["metadata"]["annotations"],
                 "the operator never answered the rollback request", timeout=30)
    wanted = {("orchestration.brix.dev", "rayclusterreplicasets", "delete"), ("ray.io", "rayclusters", "delete"),
              ("orchestration.brix.dev", "rayclusterfleets/scale", "patch")}
    wait_for(lambda: wanted <= {c[:3] for c in operator_calls(api, token)},
             "the operator never deleted a RayCluster and an old replica set", timeout=30)


def test_the_controllers_role_is_what_the_operator_calls(brix_process, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with K8sApi(request_log=100_000) as api:
        lora_engine(api, brix_process)
        api.custom().create_namespaced_custom_object("model.brix.dev", "v1alpha1", "default", "modeladapters", {
            "apiVersion": "model.brix.dev/v1alpha1", "kind": "ModelAdapter", "metadata": {"name": "sql"},
            "spec": {"podSelector": {"matchLabels": {"app": "lora"}}, "artifactURL": "huggingface://org/sql"}})
        apps = api.apps_v1()
        spec = {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": TEMPLATE}
        apps.create_namespaced_deployment("default", {"metadata": {"name": "llama"}, "spec": spec})
        apps.create_namespaced_stateful_set("default", {"metadata": {"name": "llama-sts"},
                                                        "spec": {**spec, "serviceName": "llama"}})
        autoscaler(api, "llama", "Deployment")          # minReplicas 2 > 1: both targets get scaled
        autoscaler(api, "llama-sts", "StatefulSet")
        token = "brix-controllers"
        port = procs.free_port()
        deployment = next(o for o in render(DEPLOY / "controllers") if o["kind"] == "Deployment")
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        args = [a if a != "8080" else str(port) for a in args]
        brix_process("controllers", *args, "--host", "127.0.0.1", "--lease-namespace", "brix-system",
                     "--kubeconfig", kubeconfig(tmp_path / "kc", api.url, token), "--tick", "0.2",
                     ready_url=f"http://127.0.0.1:{port}/readyz")

        def scaled() -> bool:
            return (apps.read_namespaced_deployment_scale("llama", "default").spec.replicas == 2
                    and apps.read_namespaced_stateful_set_scale("llama-sts", "default").spec.replicas == 2)
        wait_for(scaled, "the operator never scaled both targets to minReplicas 2")

        def adapter_phase() -> str:
            return (api.custom().get_namespaced_custom_object("model.brix.dev", "v1alpha1", "default",
                                                              "modeladapters", "sql").get("status") or {}).get("phase", "")
        wait_for(lambda: adapter_phase() == "Running", "the operator never loaded the ModelAdapter", timeout=30)
        # deleted: the slice drops the pod (patch), the adapter is unloaded, the finalizer goes (patch)
        api.custom().delete_namespaced_custom_object("model.brix.dev", "v1alpha1", "default", "modeladapters", "sql")
        wait_for(lambda: ("discovery.k8s.io", "endpointslices", "patch") in {c[:3] for c in operator_calls(api, token)},
                 "the operator never updated the adapter's EndpointSlice", timeout=30)
        kvcache_created_then_changed(api, token)
        fleet_scaled_and_rolled_out(api, token)
        wanted = {("autoscaling.brix.dev", "podautoscalers", "watch"), ("coordination.k8s.io", "leases", "update")}
        wait_for(lambda: wanted <= {c[:3] for c in operator_calls(api, token)},
                 "the operator never watched PodAutoscalers or renewed its Lease", timeout=30)
        compare(operator_calls(api, token), rules_of("brix-controllers", "brix-system", list(render(DEPLOY / "controllers"))),
                "brix controllers")
