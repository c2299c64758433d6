"""Process wiring of `brix device-plugin`: the supervisor and the run(settings) entry point.

The supervisor is an explicit state machine instead of NVIDIA's `goto restart`:

    WAIT_KUBELET --kubelet.sock exists--> SERVE (remove stale own socket, start grpc.aio)
    SERVE --Register ok--> WATCH --kubelet.sock re-created or own socket wiped--> SERVE again
    SERVE --Register failed--> WAIT_KUBELET (backoff)

Device state (PluginState) lives outside the gRPC server, so a re-serve keeps device health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import grpc

from brix.logs import kv
from deviceplugin.api import VERSION, api_pb2, api_pb2_grpc
from deviceplugin.backend import Backend
from deviceplugin.devices import DeviceSet
from deviceplugin.health import HealthWatcher
from deviceplugin.metrics import PluginMetrics, make_app
from deviceplugin.server import DevicePluginServicer
from deviceplugin.settings import PluginSettings
from deviceplugin.state import PluginState

log = logging.getLogger(__name__)

MIN_BACKOFF = 0.1


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_ctime_ns)


class Supervisor:
    def __init__(self, settings: PluginSettings, state: PluginState, metrics: PluginMetrics,
                 servicer: DevicePluginServicer) -> None:
        self.settings = settings
        self.state = state
        self.metrics = metrics
        self.servicer = servicer
        self.server: Any = None
        self.restarts = 0

    async def run(self) -> None:
        s = self.settings
        backoff = MIN_BACKOFF
        missing_logged = False
        try:
            while True:
                # WAIT_KUBELET
                if _identity(s.kubelet_socket) is None:
                    if not missing_logged:
                        kv(log, "kubelet socket not found; retrying with backoff until kubelet creates it",
                           logging.WARNING, kubelet_socket=str(s.kubelet_socket), max_backoff_s=s.max_backoff)
                        missing_logged = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, s.max_backoff)
                    continue
                missing_logged = False
                identity = _identity(s.kubelet_socket)
                # SERVE
                await self._serve()
                try:
                    await self._register()
                except grpc.RpcError as exc:
                    self.state.registered = False
                    kv(log, "registration at kubelet failed; retrying", logging.ERROR,
                       kubelet_socket=str(s.kubelet_socket), code=str(exc.code()), error=exc.details(),
                       retry_in_s=round(backoff, 2))
                    await self._stop_server()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, s.max_backoff)
                    continue
                backoff = MIN_BACKOFF
                # WATCH
                reason = await self._watch(identity)
                self.state.registered = False
                self.restarts += 1
                kv(log, "kubelet restart detected; serving and registering again", reason=reason,
                   restarts=self.restarts)
                await self._stop_server()
        finally:
            await self._stop_server()

    async def _serve(self) -> None:
        path = self.settings.socket_path
        if path.exists() or path.is_symlink():
            path.unlink()
            kv(log, "removed stale plugin socket", socket=str(path))
        server = grpc.aio.server()
        api_pb2_grpc.add_DevicePluginServicer_to_server(self.servicer, server)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        self.server = server
        kv(log, "device plugin serving", socket=str(path), resource=self.settings.resource,
           devices=len(self.state.devices))

    async def _register(self) -> None:
        s = self.settings
        request = api_pb2.RegisterRequest(
            version=VERSION, endpoint=s.socket_name, resource_name=s.resource,
            options=api_pb2.DevicePluginOptions(pre_start_required=False, get_preferred_allocation_available=True),
        )
        async with grpc.aio.insecure_channel(f"unix:{s.kubelet_socket}") as channel:
            await api_pb2_grpc.RegistrationStub(channel).Register(request, timeout=5, wait_for_ready=False)
        self.state.registered = True
        self.metrics.registrations.inc()
        kv(log, "registered at kubelet", kubelet_socket=str(s.kubelet_socket), resource=s.resource,
           endpoint=s.socket_name, version=VERSION)

    async def _watch(self, identity: tuple[int, int] | None) -> str:
        s = self.settings
        while True:
            await asyncio.sleep(s.kubelet_poll)
            now = _identity(s.kubelet_socket)
            if now is None:
                return "kubelet.sock removed"
            if now != identity:
                return "kubelet.sock re-created"
            if not s.socket_path.exists():
                return "plugin socket removed (kubelet wiped the device-plugins folder)"

    async def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(grace=0.2)


async def run(settings: PluginSettings, backend: Backend) -> int:
    """Serve until SIGTERM/SIGINT. The backend is already initialised (see cli.py)."""
    inventory = await asyncio.get_running_loop().run_in_executor(None, backend.discover,
                                                                settings.device_id_strategy)
    devices = DeviceSet.of(inventory.devices)
    state = PluginState(devices, inventory.topology)
    metrics = PluginMetrics(settings.resource)
    for d in devices:
        metrics.set_health(d.id, True, transition=False)
    kv(log, "devices discovered", backend=backend.kind, count=len(devices), driver=inventory.driver,
       ids=",".join(devices.ids()))
    settings.kubelet_dir.mkdir(parents=True, exist_ok=True)
    watcher = HealthWatcher(backend, list(devices), settings.checks, state,
                            lambda device_id, t: metrics.set_health(device_id, t.healthy),
                            quiet_period=settings.quiet_period, poll_interval=settings.poll_interval)
    await watcher.poll_once()
    servicer = DevicePluginServicer(state, settings.resource, settings.allocate, metrics,
                                    settings.allocation_policy)
    supervisor = Supervisor(settings, state, metrics, servicer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    if settings.metrics_port:
        from aiohttp import web

        runner = web.AppRunner(make_app(metrics, lambda: state.registered), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        kv(log, "metrics serving", url=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    tasks = [asyncio.create_task(watcher.run(), name="health"),
             asyncio.create_task(supervisor.run(), name="supervisor")]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in done:
        if task is not stopper and task.exception() is not None:
            kv(log, "device plugin task failed", logging.ERROR, task=task.get_name(), error=repr(task.exception()))
            code = 1
    for task in [*tasks, stopper]:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if runner is not None:
        await runner.cleanup()
    with contextlib.suppress(OSError):
        settings.socket_path.unlink()
    backend.close()
    kv(log, "device plugin stopped", code=code)
    return code
