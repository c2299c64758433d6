"""Prometheus metrics of the plugin (own registry, no globals) and the /healthz HTTP edge."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class PluginMetrics:
    def __init__(self, resource: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.resource = resource
        self.device_healthy = Gauge("brix_deviceplugin_device_healthy", "1 if the device is Healthy, 0 if not",
                                    ["resource", "device"], registry=r)
        self.health_transitions = Counter("brix_deviceplugin_health_transitions",
                                          "health changes sent to kubelet", ["resource", "device", "to"], registry=r)
        self.allocations = Counter("brix_deviceplugin_allocations", "devices handed out by Allocate",
                                   ["device"], registry=r)
        self.allocate_errors = Counter("brix_deviceplugin_allocate_errors",
                                       "Allocate calls refused (unknown or unhealthy device)", registry=r)
        self.registrations = Counter("brix_deviceplugin_registrations",
                                     "successful Register calls at kubelet.sock", registry=r)
        self.list_and_watch_sends = Counter("brix_deviceplugin_list_and_watch_sends",
                                            "device lists sent on ListAndWatch streams", registry=r)

    def set_health(self, device_id: str, healthy: bool, transition: bool = True) -> None:
        self.device_healthy.labels(resource=self.resource, device=device_id).set(1 if healthy else 0)
        if transition:
            self.health_transitions.labels(resource=self.resource, device=device_id,
                                           to="healthy" if healthy else "unhealthy").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def make_app(metrics: PluginMetrics, is_ready: Any) -> Any:
    """aiohttp app: /healthz (process up), /readyz (registered at kubelet), /metrics."""
    from aiohttp import web

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="registered\n")
        return web.Response(status=503, text="not registered at kubelet yet\n")

    async def prom(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prom)
    return app
