"""Builders for kube-scheduler's extender JSON and a `brix scheduler-ext` started on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml


def node(name: str, gpus: int, product: str = "NVIDIA-A100-SXM4-80GB", capacity: int | None = None,
         resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if product:
        labels["nvidia.com/gpu.product"] = product
        labels["nvidia.com/gpu.count"] = str(capacity if capacity is not None else gpus)
    status: dict[str, Any] = {"capacity": {"cpu": "64"}, "allocatable": {"cpu": "64"}}
    if gpus or capacity:
        status["capacity"][resource] = str(capacity if capacity is not None else gpus)
        status["allocatable"][resource] = str(gpus)
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "status": status}


def pod(name: str, gpus: int = 0, uid: str | None = None, namespace: str = "default", priority: int | None = None,
        annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
        node_name: str | None = None, resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "1"}}
    if gpus:
        resources["limits"] = {resource: str(gpus)}
    spec: dict[str, Any] = {"containers": [{"name": "engine", "image": "vllm", "resources": resources}]}
    if priority is not None:
        spec["priority"] = priority
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}",
                     "annotations": annotations or {}, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def args_names(p: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """ExtenderArgs exactly as kube-scheduler marshals it with nodeCacheCapable: true."""
    return {"Pod": p, "Nodes": None, "NodeNames": names}


def args_nodes(p: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """ExtenderArgs with nodeCacheCapable: false (full NodeList, NodeNames null)."""
    return {"Pod": p, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}


def http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body, separators=(",", ":")).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@dataclass
class Ext:
    url: str

    def post(self, verb: str, body: Any) -> Any:
        status, doc = http("POST", f"{self.url}/{verb}", body)
        assert status == 200, (status, doc)
        return doc


@pytest.fixture
def start_ext(brix_process, free_port, tmp_path: Path) -> Callable[..., Ext]:
    def start(nodes: list[dict[str, Any]], *extra: str, pods: list[dict[str, Any]] = ()) -> Ext:
        path = tmp_path / "nodes.yaml"
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [*nodes, *pods]}))
        url = f"http://127.0.0.1:{free_port}"
        brix_process("scheduler-ext", "scheduler-ext", "--nodes", str(path), "--port", str(free_port), *extra,
                     ready_url=f"{url}/readyz")
        return Ext(url)

    return start
