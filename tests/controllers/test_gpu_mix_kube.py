"""The GPU-mix loop on the real control plane (the `kube` fixture: A100 and H100 nodes): one
engine-mock Deployment per GPU type for one model, each with a PodAutoscaler whose source is the
optimizer; the optimizer (`brix scheduler-ext --gateway-url`, run as a pod) reads the workload of
the gateway from deploy/gateway; when the request mix through the gateway shifts from short to long
prompts, the replicas move from the A100 Deployment to the H100 one, and every pod lands on nodes
of its own GPU type (the cluster's extender filters by the pod's scheduling.brix.dev/gpu-types)."""

from __future__ import annotations

import json
import threading
from typing import Any

import openai
import pytest
import yaml

from tests.controllers.test_e2e_kube import GROUP, ready_ips, start_stack
from tests.kube import KubeNamespace
from tests.kube.workloads import engine_deployment

pytestmark = pytest.mark.kube

MODEL = "llama-mix"
GRID = [[64], [256, 4096]]
# short prompts: the A100 is cheaper per request; long prompts: the H100 is (8x the throughput for 3x the price)
PROFILES = {"a100.json": {"gpu": "A100", "cost": 1.0, "tputs": [[2.0, 0.1]], "indexes": GRID, "model": MODEL},
            "h100.json": {"gpu": "H100", "cost": 3.0, "tputs": [[4.0, 1.0]], "indexes": GRID, "model": MODEL}}


def optimizer_pod(gateway_ip: str, namespace: str) -> list[dict[str, Any]]:
    nodes = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "unused"},
         "status": {"allocatable": {"nvidia.com/gpu": "1"}}}]}
    data = {name: json.dumps(doc) for name, doc in PROFILES.items()}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mix-profiles"}, "data": data},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mix-nodes"},
         "data": {"nodes.yaml": yaml.safe_dump(nodes)}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-optimizer", "labels": {"app": "gpu-optimizer"}},
         "spec": {"enableServiceLinks": False, "terminationGracePeriodSeconds": 2, "containers": [{
             "name": "optimizer", "image": "brix:0.1.0",
             "args": ["scheduler-ext", "--nodes=/etc/mix-nodes/nodes.yaml", "--profiles=/etc/mix-profiles",
                      "--host=0.0.0.0", "--port=8890", f"--gateway-url=http://{gateway_ip}:8888",
                      f"--gateway-namespace={namespace}", "--mix-interval=1", "--mix-down-delay=5"],
             "ports": [{"name": "http", "containerPort": 8890}],
             "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
             "volumeMounts": [{"name": "profiles", "mountPath": "/etc/mix-profiles"},
                              {"name": "nodes", "mountPath": "/etc/mix-nodes"}]}],
             "volumes": [{"name": "profiles", "configMap": {"name": "mix-profiles"}},
                         {"name": "nodes", "configMap": {"name": "mix-nodes"}}]}},
    ]


def gpu_deployment(gpu: str) -> dict[str, Any]:
    dep = engine_deployment(f"mix-{gpu.lower()}", MODEL, replicas=1, gpus=1, gpu_type=gpu)
    template = dep["spec"]["template"]
    template["metadata"]["labels"]["model.brix.dev/gpu-type"] = gpu
    template["metadata"]["annotations"] = {"scheduling.brix.dev/gpu-types": gpu}
    template["spec"]["containers"][0]["args"].append("--max-model-len=8192")
    return dep


def autoscaler(gpu: str, optimizer_ip: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": f"mix-{gpu.lower()}"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"mix-{gpu.lower()}"},
                     "modelName": MODEL, "minReplicas": 0, "maxReplicas": 3, "scalingStrategy": "KPA",
                     "scaleToZeroGracePeriodSeconds": 2,
                     "metricsSources": [{"type": "optimizer", "url": f"http://{optimizer_ip}:8890", "gpuType": gpu}]}}


class Load:
    def __init__(self, gateway: openai.OpenAI, prompt_tokens: int, rps: float) -> None:
        self.gateway, self.gap, self.done = gateway, 1.0 / rps, threading.Event()
        self.prompt = "abcd" + " abcd" * (prompt_tokens - 1)
        self.errors: list[Exception] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                self.gateway.completions.create(model=MODEL, prompt=self.prompt, max_tokens=20)
            except openai.OpenAIError as exc:   # a pod going away mid-request is retried by the gateway
                self.errors.append(exc)
            self.done.wait(self.gap)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(60)


def replicas(kube: KubeNamespace, name: str) -> int:
    return int(kube.get_json(f"deployment/{name}")["spec"]["replicas"])


def test_replicas_move_between_gpu_types_when_the_mix_shifts(kube: KubeNamespace) -> None:
    gateway = start_stack(kube)
    kube.kubectl("set", "env", "deployment/brix-gateway", "BRIX_GATEWAY_WORKLOAD_WINDOW=10")
    kube.kubectl("rollout", "status", "deployment/brix-gateway", "--timeout=120s", timeout=130)
    gw_ip = next(iter(ready_ips(kube, "app.kubernetes.io/name=brix-gateway")))
    gateway = openai.OpenAI(base_url=f"http://{gw_ip}:8888/v1", api_key="unused", max_retries=2, timeout=120)
    for obj in optimizer_pod(gw_ip, kube.namespace):
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
    kube.kubectl("wait", "--for=condition=Ready", "pod/gpu-optimizer", "--timeout=60s", timeout=70)
    opt_ip = kube.get_json("pod/gpu-optimizer")["status"]["podIP"]
    for gpu in ("A100", "H100"):
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(gpu_deployment(gpu)))
    for gpu in ("A100", "H100"):
        kube.kubectl("rollout", "status", f"deployment/mix-{gpu.lower()}", "--timeout=120s", timeout=130)
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(autoscaler(gpu, opt_ip)))

    def served() -> bool:
        try:
            return bool(gateway.completions.create(model=MODEL, prompt="hi", max_tokens=2).choices)
        except openai.APIStatusError:
            return False
    kube.wait_for("the gateway to serve the model", served, 60)

    nodes = {n["metadata"]["name"]: n["metadata"]["labels"]["model.brix.dev/gpu-type"]
             for n in kube.cluster.get_json("nodes")["items"]}

    def placements() -> list[tuple[str, str]]:
        """(the pod's GPU type, its node's GPU type) for every scheduled engine pod"""
        return [(p["metadata"]["labels"]["model.brix.dev/gpu-type"], nodes[p["spec"]["nodeName"]])
                for p in kube.get_json("pods", "-l", f"model.brix.dev/name={MODEL}")["items"]
                if p["spec"].get("nodeName")]

    load = Load(gateway, 200, 3.0)            # chats: short prompts, the A100 is cheaper
    try:
        kube.wait_for("the chats on A100 only", lambda: replicas(kube, "mix-a100") >= 1
                      and replicas(kube, "mix-h100") == 0, 120)
        kube.wait_for("a Ready A100 engine", lambda: ready_ips(kube, "app=mix-a100"), 120)
        placed = placements()
    finally:
        load.stop()
    load = Load(gateway, 3000, 0.8)           # the mix shifts to long prompts: the H100 is cheaper
    try:
        kube.wait_for("the long prompts on H100 only", lambda: replicas(kube, "mix-h100") >= 1
                      and replicas(kube, "mix-a100") == 0, 150)
        kube.wait_for("a Ready H100 engine", lambda: ready_ips(kube, "app=mix-h100"), 120)
    finally:
        load.stop()
    decisions = kube.get_json(f"podautoscalers.{GROUP}/mix-a100")["status"]["lastDecisions"]
    assert any("optimizer A100" in d["reason"] for d in decisions)
    # every pod landed on a node of its own GPU type, in both phases
    placed += placements()
    assert all(want == got for want, got in placed), placed
    assert {want for want, _ in placed} == {"A100", "H100"}
