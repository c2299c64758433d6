"""The extender's HTTP edge (aiohttp): routes, per-call metrics and logging, TLS, and serve().

POST /filter, /prioritize, /bind, /preempt (kube-scheduler extender protocol; the verbs on bytes
are in verbs.py); GET /healthz, /readyz, /metrics; the GPU-mix optimizer under /v1/optimizer/
(optimizer_routes.py). serve() loads the cache and the targets (targets_files.py), starts the
informer (Kubernetes mode), the --nodes watcher and the GPU-mix loop, and listens.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from brix.logs import kv
from scheduler_ext import nodes_file, optimizer_routes
from scheduler_ext.cache import NodeCache
from scheduler_ext.model import WireError
from scheduler_ext.settings import Settings
from scheduler_ext.targets import TargetStore
from scheduler_ext.targets_files import load_profiles, solve_workloads
from scheduler_ext.verbs import Extender

log = logging.getLogger(__name__)
JSON = "application/json"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("brix_scheduler_ext_requests", "Extender calls by verb and outcome.",
                             ["verb", "outcome"], registry=self.registry)
        self.latency = Histogram("brix_scheduler_ext_request_seconds", "Extender call latency by verb.", ["verb"],
                                 buckets=(0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5, 1.0, 2.5, 5.0),
                                 registry=self.registry)
        self.nodes = Gauge("brix_scheduler_ext_nodes", "Nodes in the extender's cache.", registry=self.registry)
        self.pods = Gauge("brix_scheduler_ext_gpu_pods", "Bound pods holding managed resources.",
                          registry=self.registry)


# ---------------------------------------------------------------------- routes

EXT_KEY = web.AppKey("extender", Extender)
METRICS_KEY = web.AppKey("metrics", Metrics)
SLOW_CALL_S = 0.1   # a call this slow is logged at warning level (deploy/ gives kube-scheduler a 5 s httpTimeout)

Verb = Callable[[Extender, bytes], Awaitable[bytes] | bytes]


def _verb(name: str, fn: Verb, error_field: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route of one verb: the body to fn, its answer back, counted, timed and logged.
    error_field: the verb's reply has an Error field (filter, bind), so an internal failure is
    answered 200 with Error set; otherwise (prioritize, preempt) 500."""
    async def handler(request: web.Request) -> web.Response:
        ext = request.app[EXT_KEY]
        started = time.perf_counter()
        body = await request.read()
        outcome = "ok"
        try:
            out = fn(ext, body)
            if not isinstance(out, bytes):
                out = await out
            if out.startswith(b'{"Error":"') and not out.startswith(b'{"Error":""'):
                outcome = "error"
            resp = web.Response(body=out, content_type=JSON)
        except WireError as exc:
            outcome = "bad_request"
            resp = web.json_response({"Error": str(exc)}, status=400)
        except Exception as exc:  # noqa: BLE001 - an internal failure is reported, not raised
            outcome = "error"
            kv(log, "extender call failed", logging.ERROR, verb=name, error=repr(exc))
            resp = web.json_response({"Error": f"internal error in {name}: {exc!r}"},
                                     status=200 if error_field else 500)
        elapsed = time.perf_counter() - started
        metrics = request.app[METRICS_KEY]
        metrics.calls.labels(name, outcome).inc()
        metrics.latency.labels(name).observe(elapsed)
        # every call at debug level (--log-level debug shows what kube-scheduler asked); a failed or
        # slow one always, since kube-scheduler gives up on an extender call after its httpTimeout
        level = logging.DEBUG if outcome == "ok" and elapsed < SLOW_CALL_S else logging.WARNING
        if log.isEnabledFor(level):
            kv(log, "extender call", level, verb=name, outcome=outcome, ms=round(1000 * elapsed, 2),
               request_bytes=len(body), response_bytes=resp.content_length)
        return resp

    return handler


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    ext = request.app[EXT_KEY]
    if not ext.cache.synced:
        return web.Response(text="node and pod cache not synced yet\n", status=503)
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    ext, m = request.app[EXT_KEY], request.app[METRICS_KEY]
    m.nodes.set(len(ext.cache.nodes))
    m.pods.set(len(ext.cache.pods))
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(ext: Extender) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EXT_KEY] = ext
    app[METRICS_KEY] = Metrics()
    app.router.add_post("/filter", _verb("filter", Extender.filter, True))
    app.router.add_post("/prioritize", _verb("prioritize", Extender.prioritize, False))
    app.router.add_post("/bind", _verb("bind", Extender.bind, True))
    app.router.add_post("/preempt", _verb("preempt", Extender.preempt, False))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    optimizer_routes.add_routes(app, ext.targets)
    return app


# ---------------------------------------------------------------------- serving

def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return ctx


async def serve(settings: Settings) -> None:
    cache = NodeCache(frozenset(settings.resources))
    targets = TargetStore(load_profiles(settings.profiles_dir))
    api_client = None
    if settings.kubernetes:
        from scheduler_ext.informer import load_api_client

        api_client = load_api_client(settings.kubeconfig)
    ext = Extender(settings, cache, targets, api_client)
    if settings.nodes_file is not None:
        nodes, pods = nodes_file.load(settings.nodes_file)
        for node in nodes:
            cache.upsert_node(node)
        for pod in pods:
            cache.apply_pod_object(pod)
        cache.synced = True
        kv(log, "nodes loaded", file=str(settings.nodes_file), nodes=len(nodes), bound_pods=len(cache.pods))
    if settings.workloads_file is not None:
        solve_workloads(targets, settings.workloads_file)
    gc.collect()
    gc.freeze()  # the loaded cache is long-lived: keep it out of every later GC pass
    loop = asyncio.get_running_loop()
    if api_client is not None:
        from scheduler_ext.informer import Informer

        # The informer's threads parse watch events while the loop answers kube-scheduler; with the
        # default 5 ms GIL switch interval a /filter could wait that long for the GIL behind them.
        sys.setswitchinterval(0.0002)

        def hand_over(kind: str, event: str, obj: Any) -> None:  # informer thread -> loop thread
            loop.call_soon_threadsafe(ext.on_event, kind, event, obj)

        ext.informer = Informer(api_client, hand_over)
        ext.informer.start()
    ssl_ctx = tls_context(settings)
    runner = web.AppRunner(build_app(ext), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_ctx)
    await site.start()
    kv(log, "scheduler extender listening", host=settings.host, port=settings.port, tls=ssl_ctx is not None,
       mode="kubernetes" if settings.kubernetes else "standalone", profiles=len(targets.profiles))
    watcher = None
    if settings.nodes_file is not None:
        watcher = asyncio.create_task(nodes_file.watch(settings.nodes_file, ext.reload_nodes))
    mix_loop = None
    if settings.gateway_urls:  # GPU-mix targets from the gateways' live workload (scheduler_ext/gpu_mix_loop.py)
        from scheduler_ext.gpu_mix_loop import start_mix_loop

        mix_loop = start_mix_loop(targets, settings)
    try:
        await asyncio.Event().wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        if mix_loop is not None:
            await mix_loop.stop()
        if ext.informer is not None:
            ext.informer.stop()
        await runner.cleanup()
        if ext.binder is not None:
            await ext.binder.close()
