"""RayClusterFleet objects for the tests and the benchmark, and readers of what the controllers made."""

from __future__ import annotations

from typing import Any

from kubernetes import client

GROUP, VERSION = "orchestration.brix.dev", "v1alpha1"
FLEETS, REPLICASETS = "rayclusterfleets", "rayclusterreplicasets"


def fleet_body(name: str = "llm", replicas: int = 2, image: str = "v1", workers: int = 1,
               **spec: Any) -> dict[str, Any]:
    """A fleet of RayClusters: a head and `workers` GPU workers each (as vLLM with tensor parallelism
    across nodes would run), labelled app=<name>."""
    labels = {"app": name}
    worker = {"groupName": "gpu", "replicas": workers, "minReplicas": workers, "maxReplicas": workers,
              "rayStartParams": {},
              "template": {"spec": {"containers": [{"name": "ray-worker", "image": f"rayproject/ray:{image}",
                                                    "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}}
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "RayClusterFleet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"rayVersion": "2.60.0",
                                       "headGroupSpec": {"rayStartParams": {"num-cpus": "0"},
                                                         "template": {"spec": {"containers": [
                                                             {"name": "ray-head", "image": f"rayproject/ray:{image}",
                                                              "ports": [{"name": "serve", "containerPort": 8000}]}]}}},
                                       "workerGroupSpecs": [worker]}}}}
    body["spec"].update(spec)
    return body


def image_of(template: dict[str, Any]) -> str:
    return template["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]


class FleetReader:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def fleet(self, name: str = "llm") -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, FLEETS, name)

    def status(self, name: str = "llm") -> dict[str, Any]:
        return self.fleet(name).get("status") or {}

    def condition(self, ctype: str, name: str = "llm") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == ctype), {})

    def replicasets(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, REPLICASETS)["items"]

    def clusters(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object("ray.io", "v1", self.namespace, "rayclusters")["items"]

    def images(self) -> dict[str, int]:
        """Live RayClusters by head image."""
        out: dict[str, int] = {}
        for c in self.clusters():
            if not c["metadata"].get("deletionTimestamp"):
                img = image_of(c)
                out[img] = out.get(img, 0) + 1
        return out

    def create(self, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, FLEETS, body)

    def patch(self, patch: dict[str, Any], name: str = "llm") -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, FLEETS, name, patch)

    def rolled_out(self, replicas: int, image: str, name: str = "llm") -> bool:
        """Every live cluster on `image`, `replicas` of them, and the status saying so."""
        st = self.status(name)
        return (self.images() == {f"rayproject/ray:{image}": replicas} if replicas else not self.images()) and \
            st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas and \
            st.get("replicas") == replicas and st.get("observedGeneration") == self.fleet(name)["metadata"]["generation"]
