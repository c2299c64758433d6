"""A GPU pod on the real control plane: kube-scheduler calls the extender (deploy/scheduler_ext's
KubeSchedulerConfiguration), the node agent allocates GPUs through the mock device plugin
DaemonSet of deploy/local, runs the engine as a process on its pod IP, and reports it Ready."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.kube import KubeNamespace
from tests.kube.workloads import engine_pod

pytestmark = pytest.mark.kube


def pod(kube: KubeNamespace, name: str) -> dict:
    return kube.get_json("pod", name)


def ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))


def extender_log(kube: KubeNamespace) -> str:
    pods = kube.cluster.get_json("-n", "brix-system", "pods", "-l", "app.kubernetes.io/name=brix-scheduler-ext")
    folder = kube.cluster.settings.workdir / "node-agent" / "pods"
    text = ""
    for p in pods["items"]:
        for log in folder.glob(f"brix-system_{p['metadata']['name']}_*/*.log"):
            text += log.read_text()
    return text


def extender_calls(kube: KubeNamespace) -> dict[str, float]:
    """Successful calls per verb, from the extender's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{kube.cluster.extender_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    return {verb: sum(float(v) for v in re.findall(
        rf'brix_scheduler_ext_requests_total{{outcome="ok",verb="{verb}"}} (\S+)', metrics))
        for verb in ("filter", "prioritize", "bind")}


def set_filter_keep(kube: KubeNamespace, keep: int) -> None:
    """Roll the extender Deployment with --filter-keep=keep and wait until it answers again."""
    deployment = kube.cluster.get_json("-n", "brix-system", "deployment/brix-scheduler-ext")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [a for a in container["args"] if not a.startswith("--filter-keep")] + [f"--filter-keep={keep}"]
    kube.cluster.kubectl("-n", "brix-system", "apply", "-f", "-", stdin=json.dumps(
        {k: deployment[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
    kube.cluster.kubectl("-n", "brix-system", "rollout", "status", "deployment/brix-scheduler-ext", "--timeout=120s",
                         timeout=130)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{kube.cluster.extender_port}/readyz", timeout=2):
                return True
        except OSError:
            return False
    kube.wait_for("the extender to answer", answers, 60)


def process_env(p: dict) -> dict[str, str]:
    pid = int(p["status"]["containerStatuses"][0]["containerID"].removeprefix("brix://"))
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_nodes_register_with_gpus_from_their_device_plugins(kube: KubeNamespace) -> None:
    nodes = kube.cluster.get_json("nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == list(kube.cluster.node_names)
    for node in nodes:
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"].startswith("NVIDIA-")
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions["Ready"] == "True"
    leases = kube.cluster.get_json("-n", "kube-node-lease", "leases")["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= set(kube.cluster.node_names)


def test_gpu_pod_is_placed_by_the_extender_allocated_and_ready(kube: KubeNamespace) -> None:
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("engine", "llama-e2e", gpus=2)))
    p = kube.wait_for("the GPU pod to be Ready", lambda: (lambda x: x if ready(x) else None)(pod(kube, "engine")))
    assert p["spec"]["nodeName"] in kube.cluster.node_names
    ip = p["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(kube.cluster.pod_cidr)
    # the engine answers on its own pod IP
    with urllib.request.urlopen(f"http://{ip}:8000/v1/models", timeout=5) as resp:
        assert json.load(resp)["data"][0]["id"] == "llama-e2e"
    # its process got the device plugin's Allocate environment: two of the node's mock GPUs
    devices = process_env(p)["NVIDIA_VISIBLE_DEVICES"].split(",")
    assert len(devices) == 2 and all(d.startswith("GPU-") for d in devices)
    # kube-scheduler asked the extender, which bound the pod; deploy/ runs it with --filter-keep=1,
    # so /filter passed one node and kube-scheduler skipped scoring and /prioritize
    calls = extender_calls(kube)
    assert calls["filter"] >= 1 and calls["bind"] >= 1 and calls["prioritize"] == 0, calls
    log = extender_log(kube)
    bound = [line for line in log.splitlines() if "bound" in line and f"{kube.namespace}/engine" in line]
    assert bound and p["spec"]["nodeName"] in bound[0], log[-2000:]


def test_pod_that_fits_nowhere_gets_the_extenders_reason(kube: KubeNamespace) -> None:
    # kube-scheduler counts GPUs itself (managedResources ignoredByScheduler: false), so a pod asking
    # for too many never reaches the extender; a GPU type no node has is the extender's call alone
    pod_ = engine_pod("wrong-type", "llama-e2e", gpus=1, annotations={"scheduling.brix.dev/gpu-types": "L20"})
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(pod_))

    def failed_event() -> str | None:
        events = kube.get_json("events", "--field-selector", "involvedObject.name=wrong-type")["items"]
        return next((e["message"] for e in events if e["reason"] == "FailedScheduling"), None)
    message = kube.wait_for("a FailedScheduling event", failed_event)
    assert "is not among the pod's allowed types (l20)" in message, message
    assert pod(kube, "wrong-type")["status"]["phase"] == "Pending"


def test_node_with_a_faulted_gpu_is_not_chosen(kube: KubeNamespace) -> None:
    cluster = kube.cluster
    faulted = cluster.node_names[:-1]
    for node in faulted:
        subprocess.run([sys.executable, "-m", "brix", "nvml-mock", "inject", "--config",
                        str(cluster.mock_gpu_config(node)), "--gpu", "1", "--xid", "79"], check=True,
                       capture_output=True)
    try:
        def allocatable_dropped() -> bool:
            nodes = {n["metadata"]["name"]: n for n in cluster.get_json("nodes")["items"]}
            return all(nodes[n]["status"]["allocatable"]["nvidia.com/gpu"] == "3" for n in faulted)
        kube.wait_for("allocatable 4 -> 3 on the faulted nodes", allocatable_dropped)
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("whole-node", "llama-e2e", gpus=4)))
        p = kube.wait_for("the 4-GPU pod to be bound",
                          lambda: (lambda x: x if x["spec"].get("nodeName") else None)(pod(kube, "whole-node")))
        assert p["spec"]["nodeName"] == cluster.node_names[-1]
    finally:
        kube.kubectl("delete", "pod", "whole-node", "--wait=true", "--timeout=60s", check=False)
        for node in faulted:
            subprocess.run([sys.executable, "-m", "brix", "nvml-mock", "inject", "--config",
                            str(cluster.mock_gpu_config(node)), "--gpu", "1", "--heal"], check=True,
                           capture_output=True)


def test_with_every_fitting_node_passed_kube_scheduler_also_calls_prioritize(kube: KubeNamespace) -> None:
    """--filter-keep=0 (the extender rolled with it): kube-scheduler scores the fitting nodes and
    asks /prioritize too, and binds through /bind."""
    set_filter_keep(kube, 0)
    try:
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("scored", "llama-e2e", gpus=1)))
        kube.wait_for("the pod to be bound", lambda: pod(kube, "scored")["spec"].get("nodeName"))
        calls = extender_calls(kube)                       # the rolled extender's own counters
        assert calls["filter"] >= 1 and calls["prioritize"] >= 1 and calls["bind"] >= 1, calls
    finally:
        kube.kubectl("delete", "pod", "scored", "--wait=false", check=False)
        set_filter_keep(kube, 1)
