"""PodAutoscaler on the real control plane (the `kube` fixture): the CRD from deploy/crds refuses bad
specs naming the field and prints like `kubectl get hpa`; the operator from deploy/controllers (its
own ServiceAccount and RBAC, leader election) scales an engine-mock Deployment as load through the
gateway changes (KPA, HPA, APA), and scales it to zero and back through the gateway's held requests."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from typing import Any

import openai
import pytest

from brix.kube import manifests
from tests.kube import KubeNamespace
from tests.kube.workloads import engine_deployment

pytestmark = pytest.mark.kube

GROUP = "autoscaling.brix.dev"


def apply_crds(kube: KubeNamespace) -> None:
    kube.kubectl("apply", "-k", str(manifests.DEPLOY / "crds"))
    kube.kubectl("wait", "--for=condition=Established", f"crd/podautoscalers.{GROUP}", "--timeout=60s")


def pa(name: str, **spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1, "maxReplicas": 4, "scalingStrategy": "KPA",
            "windows": {"stableSeconds": 6, "panicSeconds": 2}, "modelName": "llama-as",
            "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_running", "targetValue": 2}]}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": name}, "spec": body}


def ready_ips(kube: KubeNamespace, selector: str, namespace: str | None = None) -> set[str]:
    args = ("-n", namespace) if namespace else ()
    items = kube.cluster.get_json("pods", "-l", selector, *(args or ("-n", kube.namespace)))["items"]
    return {p["status"]["podIP"] for p in items if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}


def replicas(kube: KubeNamespace) -> int:
    return int(kube.get_json("deployment/llama")["spec"]["replicas"])


def start_stack(kube: KubeNamespace, hold_timeout: int = 0) -> openai.OpenAI:
    """The gateway in the test's namespace and the operator (deploy/controllers) pointed at it."""
    apply_crds(kube)
    kube.kubectl("apply", "-k", str(manifests.DEPLOY / "gateway"))
    kube.kubectl("scale", "deployment/brix-gateway", "--replicas=1")
    if hold_timeout:
        kube.kubectl("set", "env", "deployment/brix-gateway", f"BRIX_GATEWAY_HOLD_TIMEOUT={hold_timeout}")
    kube.kubectl("rollout", "status", "deployment/brix-gateway", "--timeout=120s", timeout=130)
    gw_ip = next(iter(ready_ips(kube, "app.kubernetes.io/name=brix-gateway")))
    kube.cluster.kubectl("create", "namespace", "brix-system", check=False)
    kube.cluster.kubectl("apply", "-k", str(manifests.DEPLOY / "controllers"))
    kube.cluster.kubectl("-n", "brix-system", "set", "env", "deployment/brix-controllers",
                         f"BRIX_CONTROLLERS_GATEWAY_URL=http://{gw_ip}:8888")
    kube.cluster.kubectl("-n", "brix-system", "rollout", "status", "deployment/brix-controllers",
                         "--timeout=120s", timeout=130)
    return openai.OpenAI(base_url=f"http://{gw_ip}:8888/v1", api_key="unused", max_retries=0, timeout=120)


def wait_for_model(kube: KubeNamespace, gateway: openai.OpenAI) -> None:
    def served() -> bool:
        try:
            return bool(gateway.completions.create(model="llama-as", prompt="hello", max_tokens=2).choices)
        except openai.APIStatusError:
            return False
    kube.wait_for("the gateway to serve llama-as", served, 60)


def test_the_crd_refuses_bad_specs_naming_the_field(kube: KubeNamespace) -> None:
    apply_crds(kube)
    cases = [({"minReplicas": 5, "maxReplicas": 2}, "spec.minReplicas must be <= spec.maxReplicas"),
             ({"scalingStrategy": "XPA"}, "spec.scalingStrategy"),
             ({"maxReplicas": 0}, "spec.maxReplicas"),
             ({"metricsSources": [{"type": "external", "metric": "m", "targetValue": 1}]},
              "metricsSources[].url is required"),
             ({"schedules": [{"name": "night", "startTime": "22:00", "endTime": "06:00"}]},
              "startTime must be before endTime")]
    for change, message in cases:
        out = kube.kubectl("apply", "-f", "-", stdin=json.dumps(pa("bad", **change)), check=False)
        assert out.returncode != 0 and message in out.stderr, (change, out.stderr)
    minimal = pa("good", tolerances={})
    for key in ("minReplicas", "scalingStrategy", "windows"):
        del minimal["spec"][key]
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(minimal))
    got = kube.get_json(f"podautoscalers.{GROUP}/good")["spec"]            # the schema's defaults
    assert (got["minReplicas"], got["scalingStrategy"]) == (1, "KPA")
    assert got["tolerances"] == {"up": 0.1, "down": 0.1}
    assert got["metricsSources"][0]["port"] == 8000 and got["metricsSources"][0]["path"] == "/metrics"
    header = kube.kubectl("get", "podautoscalers").stdout.splitlines()[0].split()
    assert header == ["NAME", "TARGET", "STRATEGY", "MIN", "MAX", "DESIRED", "ACTUAL", "AGE"]


def scale_up_under_load(kube: KubeNamespace, autoscaler: dict[str, Any], what: str, scaled: Any) -> list[dict[str, Any]]:
    """An engine-mock Deployment at 1 replica behind the gateway and the operator; 8 clients send
    requests back to back (~8 running on 1 pod, target 2 per pod) until `scaled()`; every request
    must succeed. Returns the autoscaler's decisions."""
    gateway = start_stack(kube)
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_deployment("llama", "llama-as", replicas=1)))
    kube.kubectl("rollout", "status", "deployment/llama", "--timeout=120s", timeout=130)
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(autoscaler))
    wait_for_model(kube, gateway)
    done = threading.Event()

    def worker(i: int) -> int:
        n = 0
        while not done.is_set():
            out = gateway.completions.create(model="llama-as", prompt=f"load {i} {n}", max_tokens=400)
            assert out.choices
            n += 1
        return n
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(worker, i) for i in range(8)]
        try:
            kube.wait_for(what, scaled, 90)
        finally:
            done.set()
        served = sum(f.result(300) for f in futures)            # no request lost while scaling
    assert served >= 8
    return kube.get_json(f"podautoscalers.{GROUP}/llama")["status"]["lastDecisions"]


def test_kpa_scales_an_engine_deployment_with_load_through_the_gateway(kube: KubeNamespace) -> None:
    decisions = scale_up_under_load(kube, pa("llama"), "a panic scale-up", lambda: replicas(kube) >= 3)
    assert decisions[0]["from"] == 1 and "panic" in decisions[0]["reason"]
    kube.wait_for("a scale-down once the load is gone", lambda: replicas(kube) == 1, 120)


# HPA and APA decide every second here, and scale down without their 300 s stabilisation window.
FAST_DOWN = {"syncPeriodSeconds": 1, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}


def test_hpa_scales_an_engine_deployment_with_load_through_the_gateway(kube: KubeNamespace) -> None:
    decisions = scale_up_under_load(kube, pa("llama", scalingStrategy="HPA", **FAST_DOWN), "an HPA scale-up",
                                    lambda: replicas(kube) >= 3)
    # Kubernetes' formula on the one pod: ceil(1 x running / 2), at least 3 in one step
    assert decisions[0]["from"] == 1 and decisions[0]["to"] >= 3
    kube.wait_for("a scale-down once the load is gone", lambda: replicas(kube) == 1, 60)
    down = kube.get_json(f"podautoscalers.{GROUP}/llama")["status"]["lastDecisions"][-1]
    assert down["to"] == 1 and down["from"] >= 3                    # 100 % per 15 s: straight down


def test_apa_scales_an_engine_deployment_with_load_through_the_gateway(kube: KubeNamespace) -> None:
    decisions = scale_up_under_load(kube, pa("llama", scalingStrategy="APA", **FAST_DOWN), "an APA scale-up to 3+",
                                    lambda: replicas(kube) >= 3)
    assert (decisions[0]["from"], decisions[0]["to"]) == (1, 2)    # maxScaleUpRate 2: one pod may only double
    kube.wait_for("a scale-down once the load is gone", lambda: replicas(kube) == 1, 60)


def test_scale_to_zero_and_back_through_held_requests(kube: KubeNamespace) -> None:
    gateway = start_stack(kube, hold_timeout=120)
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_deployment("llama", "llama-as", replicas=1)))
    kube.kubectl("rollout", "status", "deployment/llama", "--timeout=120s", timeout=130)
    wait_for_model(kube, gateway)                                # the gateway learns the model
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(pa("llama", minReplicas=0, scaleToZeroGracePeriodSeconds=3)))
    kube.wait_for("scaled to zero", lambda: replicas(kube) == 0, 90)
    kube.wait_for("no engine pod left", lambda: not ready_ips(kube, "app=llama"), 60)
    out = gateway.completions.create(model="llama-as", prompt="wake up", max_tokens=2)   # held, then served
    assert out.choices
    assert replicas(kube) >= 1
    decisions = kube.get_json(f"podautoscalers.{GROUP}/llama")["status"]["lastDecisions"]
    assert any(d["from"] == 0 and "held by the gateway" in d["reason"] for d in decisions)
