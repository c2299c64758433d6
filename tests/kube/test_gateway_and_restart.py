"""The gateway from deploy/gateway (its ServiceAccount and Role, not admin) discovers engine-mock
pods of a Deployment through the real API, routes to them, and forgets a pod scaled away; the
gateway and the extender's informer survive a kube-apiserver restart."""

from __future__ import annotations

import json
import time

import openai
import pytest

from brix.kube import manifests
from tests.kube import KubeNamespace
from tests.kube.workloads import engine_deployment, engine_pod

pytestmark = pytest.mark.kube


def pods(kube: KubeNamespace, selector: str) -> list[dict]:
    return kube.get_json("pods", "-l", selector)["items"]


def ready_ips(kube: KubeNamespace, selector: str) -> set[str]:
    return {p["status"]["podIP"] for p in pods(kube, selector)
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}


def start_gateway(kube: KubeNamespace) -> openai.OpenAI:
    kube.kubectl("apply", "-k", str(manifests.DEPLOY / "gateway"))
    kube.kubectl("scale", "deployment/brix-gateway", "--replicas=1")
    kube.kubectl("rollout", "status", "deployment/brix-gateway", "--timeout=120s", timeout=130)
    ip = next(iter(ready_ips(kube, "app.kubernetes.io/name=brix-gateway")))
    return openai.OpenAI(base_url=f"http://{ip}:8888/v1", api_key="unused", max_retries=0, timeout=10)


def endpoints_used(gateway: openai.OpenAI, model: str, requests: int = 12) -> set[str]:
    """Endpoints that served `requests` chats; empty while the gateway does not know the model yet."""
    used = set()
    for i in range(requests):
        try:
            raw = gateway.chat.completions.with_raw_response.create(
                model=model, max_tokens=2, messages=[{"role": "user", "content": f"hello {i}"}])
        except (openai.NotFoundError, openai.APIStatusError):
            return set()
        used.add(raw.headers["x-brix-endpoint"])
    return used


def test_gateway_discovers_a_deployments_engines_and_forgets_a_scaled_away_one(kube: KubeNamespace) -> None:
    gateway = start_gateway(kube)
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_deployment("llama", "llama-gw", replicas=2)))
    kube.kubectl("rollout", "status", "deployment/llama", "--timeout=120s", timeout=130)
    engines = ready_ips(kube, "app=llama")
    assert len(engines) == 2
    expected = {f"http://{ip}:8000" for ip in engines}
    used = kube.wait_for("the gateway to route to both engines",
                         lambda: (lambda u: u if u == expected else None)(endpoints_used(gateway, "llama-gw")), 30)
    assert used == expected

    kube.kubectl("scale", "deployment/llama", "--replicas=1")
    kube.wait_for("one engine left", lambda: len(pods(kube, "app=llama")) == 1)
    left = {f"http://{ip}:8000" for ip in ready_ips(kube, "app=llama")}
    assert len(left) == 1
    # once the pod is gone from the API, the gateway never routes to it
    assert endpoints_used(gateway, "llama-gw", 10) == left


def test_gateway_and_extender_survive_an_apiserver_restart(kube: KubeNamespace) -> None:
    gateway = start_gateway(kube)
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("before", "llama-rs")))
    kube.wait_for("the first engine Ready", lambda: ready_ips(kube, "model.brix.dev/name=llama-rs"))
    kube.wait_for("the gateway to route to it", lambda: endpoints_used(gateway, "llama-rs", 1))

    kube.cluster.plane.restart_apiserver()
    started = time.monotonic()
    # created after the restart: only a re-established watch can tell the gateway and the extender
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(engine_pod("after", "llama-rs", gpus=1)))
    kube.wait_for("the GPU pod placed through the extender and Ready",
                  lambda: len(ready_ips(kube, "model.brix.dev/name=llama-rs")) == 2, 90)
    both = {f"http://{ip}:8000" for ip in ready_ips(kube, "model.brix.dev/name=llama-rs")}
    kube.wait_for("the gateway to route to the pod created after the restart",
                  lambda: endpoints_used(gateway, "llama-rs", 12) == both, 60)
    assert time.monotonic() - started < 120
