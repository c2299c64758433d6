"""An optimizer metric source: the PodAutoscaler follows the GPU-mix target that a real
`brix scheduler-ext` serves for the model and the source's GPU type."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from brix import procs
from tests.controllers.conftest import deployment, eventually, operator_settings, running_operator
from tests.k8s_api import K8sApi
from tests.scheduler_ext.conftest import http, node


def replicas(api: K8sApi) -> int:
    return int(api.apps_v1().read_namespaced_deployment_scale("llama", "default").spec.replicas)


async def test_the_autoscaler_follows_the_optimizer_target_of_its_gpu_type(k8s_api: K8sApi, brix_process,  # type: ignore[no-untyped-def]
                                                                           tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.yaml"
    nodes.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [node("a100-0", 8)]}))
    port = procs.free_port()
    ext = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(brix_process, "scheduler-ext", "scheduler-ext", "--nodes", str(nodes), "--port",
                            str(port), ready_url=f"{ext}/readyz")
    status, _ = await asyncio.to_thread(http, "PUT", f"{ext}/v1/optimizer/targets/default/llama",
                                        {"replicas": {"A100": 3, "A10G": 5}})
    assert status == 200
    deployment(k8s_api)
    k8s_api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers", {
        "apiVersion": "autoscaling.brix.dev/v1alpha1", "kind": "PodAutoscaler", "metadata": {"name": "llama-a100"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
                 "modelName": "llama", "minReplicas": 1, "maxReplicas": 10,
                 "metricsSources": [{"type": "optimizer", "url": ext, "gpuType": "A100"}]}})
    async with running_operator(k8s_api, operator_settings()):
        await eventually(lambda: replicas(k8s_api) == 3, "the A100 target of 3 (not the A10G one of 5)")
        await asyncio.to_thread(http, "PUT", f"{ext}/v1/optimizer/targets/default/llama", {"replicas": {"A100": 2}})
        await eventually(lambda: replicas(k8s_api) == 2, "the new A100 target of 2")
