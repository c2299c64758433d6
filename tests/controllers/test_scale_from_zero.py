"""Scale from zero end to end against the emulator: the gateway (a real `brix gateway` process with
--hold-timeout) holds a request for a model whose engine is gone, the operator reads the held demand
from the gateway's /metrics and scales the Deployment from 0, and once the engine is back the held
request is answered: nothing is lost."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import openai

from brix import procs
from tests.controllers.conftest import deployment, eventually, operator_settings, running_operator
from tests.k8s_api import K8sApi


def replicas(api: K8sApi) -> int:
    return int(api.apps_v1().read_namespaced_deployment_scale("llama", "default").spec.replicas)


async def test_a_held_request_scales_the_target_from_zero_and_is_answered(k8s_api: K8sApi, brix_process) -> None:  # type: ignore[no-untyped-def]
    engine_port, gw_port = procs.free_port(), procs.free_port()
    engine = ["engine-mock", "--port", str(engine_port), "--model", "mock-llm", "--speed", "20"]
    proc = await asyncio.to_thread(brix_process, "engine", *engine, ready_url=f"http://127.0.0.1:{engine_port}/health")
    gw = f"http://127.0.0.1:{gw_port}"
    await asyncio.to_thread(brix_process, "gateway", "gateway", "--port", str(gw_port), "--endpoints",
                            f"http://127.0.0.1:{engine_port}", "--hold-timeout", "60", "--scrape-interval", "0.05",
                            "--models-refresh", "0.5", ready_url=gw + "/readyz")
    await asyncio.to_thread(proc.stop)                          # scaled to zero: no engine left
    deployment(k8s_api, replicas=0)
    k8s_api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers", {
        "apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": "llama"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
                 "modelName": "mock-llm", "minReplicas": 0, "maxReplicas": 4,
                 "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_running", "targetValue": 4,
                                     "port": engine_port}]}})

    def gateway_not_ready() -> bool:
        try:
            urllib.request.urlopen(gw + "/readyz", timeout=2)
            return False
        except urllib.error.HTTPError as exc:
            return exc.code == 503
    await eventually(gateway_not_ready, "the gateway to see its engine gone")
    client = openai.AsyncOpenAI(base_url=gw + "/v1", api_key="x", max_retries=0, timeout=90)
    async with running_operator(k8s_api, operator_settings(gateway_urls=(gw,))):
        await asyncio.sleep(3)
        assert replicas(k8s_api) == 0                           # nothing held, nothing to do
        held = asyncio.create_task(client.completions.create(model="mock-llm", prompt="wake up", max_tokens=2))
        await eventually(lambda: replicas(k8s_api) == 1, "a scale-up from zero on the held request")
        assert not held.done()
        # the new pod starts (the emulator runs no kubelet: start its engine where the gateway looks)
        await asyncio.to_thread(brix_process, "engine-again", *engine,
                                ready_url=f"http://127.0.0.1:{engine_port}/health")
        out = await asyncio.wait_for(held, 30)
        assert out.choices
        decisions = k8s_api.custom().get_namespaced_custom_object(
            "autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers", "llama")["status"]["lastDecisions"]
        assert decisions[-1]["from"] == 0 and decisions[-1]["to"] == 1
        assert "held by the gateway" in decisions[-1]["reason"]
