"""Kubernetes mode against the k8s_api fixture: the informer fills the cache, /bind creates pods/binding."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.scheduler_ext.conftest import Ext, args_names, node, pod


def kubeconfig(path: Path, url: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return str(path)


def start(brix_process, free_port, tmp_path, k8s_api) -> Ext:
    url = f"http://127.0.0.1:{free_port}"
    brix_process("scheduler-ext", "scheduler-ext", "--kubernetes", "--kubeconfig",
                 kubeconfig(tmp_path / "kubeconfig", k8s_api.url), "--port", str(free_port),
                 ready_url=f"{url}/readyz")
    return Ext(url)


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def strip(obj: dict) -> dict:
    obj = {k: v for k, v in obj.items() if k != "status"} if obj.get("kind") == "Pod" else obj
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "uid"}
    return obj


def test_informer_sees_nodes_and_pods_bound_elsewhere(k8s_api, brix_process, free_port, tmp_path):
    core = k8s_api.core_v1()
    core.create_node(strip(node("gpu-0", 8)))
    ext = start(brix_process, free_port, tmp_path, k8s_api)
    assert ext.post("filter", args_names(pod("p", 6), ["gpu-0"]))["NodeNames"] == ["gpu-0"]

    # a pod bound by someone else (the default scheduler, a kubelet restart) uses 4 GPUs
    core.create_namespaced_pod("default", strip(pod("other", 4, node_name="gpu-0")))
    eventually(lambda: _assert_failed(ext, "gpu-0", "needs 6 nvidia.com/gpu, 4 free"))

    # a node added later is picked up; deleting the pod frees its GPUs
    core.create_node(strip(node("gpu-1", 2, product="NVIDIA-L4")))
    eventually(lambda: _assert_passing(ext, pod("q", 2), ["gpu-1"]))
    core.delete_namespaced_pod("other", "default")
    eventually(lambda: _assert_passing(ext, pod("p", 6), ["gpu-0"]))


def test_bind_creates_the_binding(k8s_api, brix_process, free_port, tmp_path):
    core = k8s_api.core_v1()
    core.create_node(strip(node("gpu-0", 8)))
    created = core.create_namespaced_pod("default", strip(pod("engine", 4)))
    uid = created.metadata.uid
    ext = start(brix_process, free_port, tmp_path, k8s_api)
    engine = pod("engine", 4, uid=uid)
    assert ext.post("filter", args_names(engine, ["gpu-0"]))["NodeNames"] == ["gpu-0"]
    assert ext.post("bind", {"PodName": "engine", "PodNamespace": "default", "PodUID": uid,
                             "Node": "gpu-0"}) == {"Error": ""}
    assert core.read_namespaced_pod("engine", "default").spec.node_name == "gpu-0"
    # the binding is counted at once (assumed), and stays counted once the informer confirms it
    _assert_failed(ext, "gpu-0", "needs 6 nvidia.com/gpu, 4 free", pod("p", 6))
    time.sleep(0.3)
    _assert_failed(ext, "gpu-0", "needs 6 nvidia.com/gpu, 4 free", pod("p", 6))
    # binding an already bound pod fails with the API's answer in Error
    doc = ext.post("bind", {"PodName": "engine", "PodNamespace": "default", "PodUID": uid, "Node": "gpu-0"})
    assert "409" in doc["Error"]


def _assert_failed(ext: Ext, name: str, reason: str, p: dict | None = None) -> None:
    doc = ext.post("filter", args_names(p or pod("p", 6), [name]))
    assert doc["FailedNodes"].get(name) == reason, doc


def _assert_passing(ext: Ext, p: dict, names: list[str]) -> None:
    doc = ext.post("filter", args_names(p, names))
    assert doc["NodeNames"] == names, doc


def test_finished_pods_free_their_gpus(k8s_api, brix_process, free_port, tmp_path):
    core = k8s_api.core_v1()
    core.create_node(strip(node("gpu-0", 8)))
    core.create_namespaced_pod("default", strip(pod("job", 6, node_name="gpu-0")))
    ext = start(brix_process, free_port, tmp_path, k8s_api)
    _assert_failed(ext, "gpu-0", "needs 4 nvidia.com/gpu, 2 free", pod("p", 4))
    core.patch_namespaced_pod_status("job", "default", {"status": {"phase": "Succeeded"}})
    eventually(lambda: _assert_passing(ext, pod("p", 4), ["gpu-0"]))
