"""`run(settings)`: build the gateway from settings and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from brix.commands import UsageError
from brix.logs import kv
from gateway.apikeys import KeyBook, load_keys
from gateway.config import GatewayConfig, load_config
from gateway.handlers import Discovery, Gateway, build_edge, make_gateway, running
from gateway.ratelimit import MemoryStore, RedisStore, Store
from gateway.router import Router
from gateway.routing.registry import register_builtin
from gateway.settings import Settings

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 10.0  # in-flight requests get this long to finish after SIGTERM


def load_inputs(settings: Settings) -> tuple[GatewayConfig, KeyBook | None, Router]:
    registry = register_builtin()
    config = GatewayConfig()
    if settings.config_path:
        try:
            config = load_config(settings.config_path, registry)
        except ValueError as exc:
            raise UsageError(f"--config: {exc}") from None
    keys = None
    if settings.api_keys_path:
        try:
            keys = load_keys(settings.api_keys_path)
        except ValueError as exc:
            raise UsageError(f"--api-keys-file: {exc}") from None
    return config, keys, Router(registry, config)


def make_discovery(settings: Settings) -> Discovery:
    if settings.kubernetes:
        from kubernetes import client
        from kubernetes import config as kconfig

        from gateway.k8s_discovery import KubernetesDiscovery

        try:
            if settings.kubeconfig:
                kconfig.load_kube_config(settings.kubeconfig)
            else:
                try:
                    kconfig.load_incluster_config()
                except kconfig.ConfigException:
                    kconfig.load_kube_config()
        except Exception as exc:  # noqa: BLE001 - any config failure is a usage problem here
            raise UsageError(f"--kubernetes: cannot load Kubernetes credentials ({exc}); set --kubeconfig or run "
                             "in a pod with a service account") from None
        return KubernetesDiscovery(client.ApiClient(), settings.namespace)
    from gateway.discovery import StaticDiscovery

    return StaticDiscovery(list(settings.endpoints))


async def serve(settings: Settings, gw: Gateway, discovery: Discovery, stop: asyncio.Event) -> None:
    edge = build_edge(gw)
    async with running(gw, discovery):
        try:
            await edge.start(settings.host, settings.port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); pick a free "
                             "--port or another --host") from None
        try:
            await _serve_until(settings, gw, stop)
        finally:
            await edge.stop(grace_s=SHUTDOWN_GRACE_S)


async def _serve_until(settings: Settings, gw: Gateway, stop: asyncio.Event) -> None:
    kv(log, "gateway listening", host=settings.host, port=settings.port,
       mode="kubernetes" if settings.kubernetes else "static", endpoints=len(settings.endpoints),
       default_strategy=gw.router.config.default_strategy,
       api_keys=len(gw.admission.keys) if gw.admission.keys else 0,
       rate_limits="redis" if settings.redis_url else "memory")
    await stop.wait()
    kv(log, "gateway stopping", grace_s=SHUTDOWN_GRACE_S)


async def amain(settings: Settings) -> int:
    config, keys, router = load_inputs(settings)
    store: Store
    if settings.redis_url:
        store = redis = RedisStore(settings.redis_url)
        try:
            await redis.ping()
        except Exception as exc:  # noqa: BLE001
            await store.close()
            raise UsageError(f"--redis {settings.redis_url.split('@')[-1]}: cannot reach Redis ({exc})") from None
    else:
        store = MemoryStore()
        if keys is not None or any(m.rps for m in config.models.values()):
            kv(log, "no --redis: rate limits are kept in memory and are per gateway replica", logging.WARNING)
    gw = make_gateway(settings, keys, store, router, {m: c.rps for m, c in config.models.items() if c.rps})
    discovery = make_discovery(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, gw, discovery, stop)
    return 0


def run(settings: Settings) -> int:
    """Serve on uvloop or the standard asyncio loop, as settings.event_loop says."""
    if settings.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if settings.event_loop == "uvloop":
                raise UsageError("--event-loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            kv(log, "event loop", loop="uvloop")
            return uvloop.run(amain(settings))
    kv(log, "event loop", loop="asyncio")
    return asyncio.run(amain(settings))
