"""Fixtures for the operator tests: fake engine pods (a /metrics server on their own 127.x pod IP)
registered as Ready pods of a Deployment in the k8s_api emulator, and the operator itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from brix import procs
from controllers.settings import AutoscalerSettings, LeaderSettings, OperatorSettings
from tests.http_apps import serving
from tests.k8s_api import K8sApi


@dataclass
class FakePods:
    """Engine pods that only export one gauge; `values[name]` is what each one reports."""

    api: K8sApi
    port: int
    values: dict[str, float] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)

    async def add(self, name: str, ip: str, value: float, labels: dict[str, str]) -> None:
        self.values[name] = value

        async def metrics(_: web.Request) -> web.Response:
            if name not in self.values:
                return web.Response(status=500)
            return web.Response(text=f'vllm:num_requests_waiting{{model_name="llama"}} {self.values[name]}\n')
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, ip, self.port).start()
        self.runners.append(runner)
        core = self.api.core_v1()
        core.create_namespaced_pod("default", {"metadata": {"name": name, "labels": labels},
                                               "spec": {"containers": [{"name": "engine", "image": "brix"}]}})
        core.patch_namespaced_pod_status(name, "default", {"status": {
            "phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})

    async def close(self) -> None:
        for r in self.runners:
            await r.cleanup()


@pytest.fixture
async def fake_pods(k8s_api: K8sApi) -> AsyncIterator[FakePods]:
    pods = FakePods(k8s_api, procs.free_port())
    yield pods
    await pods.close()


def deployment(api: K8sApi, name: str = "llama", replicas: int = 1) -> None:
    labels = {"app": name}
    api.apps_v1().create_namespaced_deployment("default", {
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "engine", "image": "brix"}]}}}})


def autoscaler(api: K8sApi, name: str, port: int, **spec: Any) -> None:
    body = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
            "minReplicas": 1, "maxReplicas": 10, "scalingStrategy": "KPA",
            "windows": {"stableSeconds": 6, "panicSeconds": 2},
            "metricsSources": [{"type": "pod", "metric": "vllm:num_requests_waiting", "targetValue": 10,
                                "port": port}]}
    body.update(spec)
    api.custom().create_namespaced_custom_object("autoscaling.brix.dev", "v1alpha1", "default", "podautoscalers",
                                                 {"apiVersion": "autoscaling.brix.dev/v1alpha1",
                                                  "kind": "PodAutoscaler", "metadata": {"name": name}, "spec": body})


def operator_settings(identity: str = "", leader: bool = False, **autoscaler: Any) -> OperatorSettings:
    return OperatorSettings(namespaces=("default",), host="127.0.0.1", metrics_port=procs.free_port(),
                            leader=LeaderSettings(enabled=leader, namespace="default", identity=identity,
                                                  lease_duration_s=3.0, renew_period_s=0.5),
                            autoscaler=AutoscalerSettings(tick_s=0.5, scrape_timeout_s=0.5, **autoscaler))


@contextlib.asynccontextmanager
async def running_operator(api: K8sApi, settings: OperatorSettings) -> AsyncIterator[asyncio.Event]:
    from controllers.operator import run

    stop = asyncio.Event()
    client = api.api_client
    assert client is not None
    task = asyncio.create_task(run(settings, client, stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def text_endpoint(path: str, text: Callable[[], str]) -> AsyncIterator[str]:
    """An HTTP endpoint on 127.0.0.1 answering GET `path` with text() (an external metrics source);
    yields its URL."""
    async def answer(_: web.Request) -> web.Response:
        return web.Response(text=text())
    app = web.Application()
    app.router.add_get(path, answer)
    async with serving(app) as url:
        yield url + path
