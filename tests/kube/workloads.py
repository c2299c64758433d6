"""Objects the real-control-plane tests create: engine-mock pods and Deployments asking for GPUs."""

from __future__ import annotations

from typing import Any


def engine_container(model: str, gpus: int = 0, gpu_type: str = "A100", port: int = 8000) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "engine", "image": "brix:0.1.0",
        "args": ["engine-mock", "--host=0.0.0.0", f"--port={port}", f"--model={model}", f"--gpu-type={gpu_type}"],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return container


def engine_pod(name: str, model: str, gpus: int = 0, annotations: dict[str, str] | None = None,
               **kw: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"model.brix.dev/name": model, "model.brix.dev/port": "8000"},
                         "annotations": annotations or {}},
            "spec": {"containers": [engine_container(model, gpus, **kw)], "terminationGracePeriodSeconds": 5,
                     "enableServiceLinks": False}}


def engine_deployment(name: str, model: str, replicas: int, gpus: int = 0, **kw: Any) -> dict[str, Any]:
    labels = {"app": name, "model.brix.dev/name": model, "model.brix.dev/port": "8000"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [engine_container(model, gpus, **kw)],
                                           "terminationGracePeriodSeconds": 5, "enableServiceLinks": False}}}}
