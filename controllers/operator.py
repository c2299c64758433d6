"""`brix controllers`: the kopf operator, its Lease election, and /healthz, /readyz, /metrics.

run(settings) serves the health and metrics port at once, then either stands by for the Lease
or (leading) runs kopf with every controller's handlers plus their tick loops; losing the Lease
stops both, and the replica stands by again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import kopf
from aiohttp import web
from kubernetes import client, config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from brix.logs import kv
from controllers.leader import Elector
from controllers.registry import register_all
from controllers.runtime import Runtime
from controllers.settings import OperatorSettings

log = logging.getLogger(__name__)


def load_api_client(kubeconfig: str | None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, else in-cluster, else ~/.kube/config."""
    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    return client.ApiClient(cfg)


def _login(registry: kopf.OperatorRegistry, api_client: client.ApiClient) -> None:
    """kopf connects with the very credentials of the operator's own ApiClient."""
    cfg = api_client.configuration

    @kopf.on.login(registry=registry, id="brix-login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        token = None
        if auth:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
            if prefix and prefix.lower() != "bearer":
                token = auth
        return kopf.ConnectionInfo(server=cfg.host, ca_path=cfg.ssl_ca_cert or None,
                                   insecure=not cfg.verify_ssl, token=token, certificate_path=cfg.cert_file or None,
                                   private_key_path=cfg.key_file or None)


def kopf_settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.posting.enabled = False   # no Kubernetes Events: failures are in the log and the status conditions
    s.watching.server_timeout = 300
    s.watching.client_timeout = 330
    s.networking.request_timeout = 60
    return s


async def lead(rt: Runtime, stop: asyncio.Event) -> None:
    """What the leader runs: kopf with every controller registered, and their tick loops."""
    # kopf logs every handled event at INFO ("Handler ... succeeded"): one line per status write
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    _login(registry, rt.api_client)
    loops = register_all(registry, rt)
    s = rt.settings
    ready = asyncio.Event()
    rt.leading = True
    rt.stats.leader.set(1)
    kv(log, "leading", namespaces=",".join(s.namespaces) or "*")
    tasks = [asyncio.create_task(kopf.operator(
        registry=registry, settings=kopf_settings(), standalone=True, clusterwide=s.all_namespaces,
        namespaces=list(s.namespaces), stop_flag=stop, ready_flag=ready))]
    tasks += [asyncio.create_task(loop(stop)) for loop in loops]

    async def mark_ready() -> None:
        await ready.wait()
        rt.kopf_ready = True
    marker = asyncio.create_task(mark_ready())
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            for t in done:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if tasks[0] in done:   # kopf stops on SIGTERM / SIGINT (its own handlers): end the process
                kv(log, "stopping on a signal")
                rt.shutdown.set()
                return
            raise RuntimeError("a controller loop ended on its own")
    finally:
        stop.set()
        marker.cancel()
        await asyncio.gather(*tasks, marker, return_exceptions=True)
        rt.leading = rt.kopf_ready = False
        rt.stats.leader.set(0)


def health_app(rt: Runtime) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        standby_ok = rt.lease_ok_at is not None and rt.clock() - rt.lease_ok_at < 3 * rt.settings.leader.renew_period_s
        ok = rt.kopf_ready or (not rt.leading and standby_ok)
        return web.json_response({"leader": rt.leading, "watching": rt.kopf_ready}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(rt.stats.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def run(settings: OperatorSettings, api_client: client.ApiClient | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Serve health and metrics, then lead (or stand by) until `stop` is set or the process ends."""
    rt = Runtime(settings, api_client or load_api_client(settings.kubeconfig))
    stop = stop or asyncio.Event()
    runner = web.AppRunner(health_app(rt), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    kv(log, "controllers started", metrics=f"{settings.host}:{settings.metrics_port}",
       leader_election=settings.leader.enabled)
    try:
        if not settings.leader.enabled:
            await lead(rt, stop)
            return
        rt.shutdown = asyncio.Event()
        identity = settings.leader.identity or f"{socket.gethostname()}_{os.getpid()}"
        elector = Elector(rt.api_client, settings.leader, identity, rt.clock)

        async def watch_lease_health() -> None:
            while True:
                rt.lease_ok_at = elector.last_ok
                await asyncio.sleep(0.5)
        health = asyncio.create_task(watch_lease_health())
        elect = asyncio.create_task(elector.run(lambda s: lead(rt, s)))
        stopper = asyncio.create_task(stop.wait())
        signalled = asyncio.create_task(rt.shutdown.wait())
        done, _ = await asyncio.wait({elect, stopper, signalled}, return_when=asyncio.FIRST_COMPLETED)
        for t in (elect, stopper, signalled, health):
            t.cancel()
        # waits for the Lease release
        await asyncio.gather(elect, stopper, signalled, health, return_exceptions=True)
        if elect in done:
            elect.result()
    finally:
        await runner.cleanup()
