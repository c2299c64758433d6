"""The kubelet side of a simulated GPU node, for `brix up`.

A real kubelet serves `v1beta1.Registration` on <kubelet-dir>/kubelet.sock, dials each plugin that
registers, streams its ListAndWatch and turns the healthy device count into the node's
allocatable. This does the same on loopback, and renders the node as a v1 Node object (capacity,
allocatable, GPU Feature Discovery labels) that the scheduler extender reads in standalone mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from brix.aio import cancel_and_wait
from brix.logs import kv
from deviceplugin.api import HEALTHY, KUBELET_SOCKET_NAME, VERSION, api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class PluginState:
    resource: str
    endpoint: str
    devices: dict[str, str] = field(default_factory=dict)  # device id -> Healthy / Unhealthy
    updates: int = 0

    @property
    def healthy(self) -> int:
        return sum(1 for health in self.devices.values() if health == HEALTHY)


@dataclass
class MockKubelet:
    node: str
    directory: Path
    labels: dict[str, str] = field(default_factory=dict)
    on_change: Callable[[MockKubelet], None] | None = None
    plugins: dict[str, PluginState] = field(default_factory=dict)
    _server: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        socket = self.directory / KUBELET_SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()
        server = grpc.aio.server()
        api_pb2_grpc.add_RegistrationServicer_to_server(_Registration(self), server)
        server.add_insecure_port(f"unix:{socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._server is not None:
            await self._server.stop(grace=0)

    def _registered(self, request: api_pb2.RegisterRequest) -> None:
        state = PluginState(request.resource_name, request.endpoint)
        self.plugins[request.resource_name] = state
        kv(log, "device plugin registered", node=self.node, resource=request.resource_name,
           endpoint=request.endpoint)
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch(state)))

    async def _watch(self, state: PluginState) -> None:
        target = f"unix:{self.directory / state.endpoint}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = api_pb2_grpc.DevicePluginStub(channel)
            async for response in stub.ListAndWatch(api_pb2.Empty()):
                state.devices = {d.ID: d.health for d in response.devices}
                state.updates += 1
                self.changed.set()
                if self.on_change is not None:
                    self.on_change(self)

    async def allocate(self, resource: str, count: int, in_use: frozenset[str] = frozenset()
                       ) -> tuple[list[str], dict[str, str]]:
        """Ask the plugin for a preferred set of `count` healthy devices not in use, then Allocate them."""
        state = self.plugins[resource]
        available = [d for d, h in state.devices.items() if h == HEALTHY and d not in in_use]
        if len(available) < count:
            raise ValueError(f"{resource}: {count} requested, {len(available)} healthy and free on {self.node}")
        async with grpc.aio.insecure_channel(f"unix:{self.directory / state.endpoint}") as channel:
            stub = api_pb2_grpc.DevicePluginStub(channel)
            preferred = await stub.GetPreferredAllocation(api_pb2.PreferredAllocationRequest(container_requests=[
                api_pb2.ContainerPreferredAllocationRequest(available_deviceIDs=available, allocation_size=count)]))
            ids = list(preferred.container_responses[0].deviceIDs)
            response = await stub.Allocate(api_pb2.AllocateRequest(
                container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids)]))
        return ids, dict(response.container_responses[0].envs)

    def node_object(self) -> dict[str, Any]:
        """The v1 Node as kubelet would report it: capacity = devices, allocatable = healthy ones."""
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "110"}
        allocatable = dict(capacity)
        for resource, state in self.plugins.items():
            capacity[resource] = str(len(state.devices))
            allocatable[resource] = str(state.healthy)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node, **self.labels}},
            "status": {"capacity": capacity, "allocatable": allocatable,
                       "conditions": [{"type": "Ready", "status": "True"}]},
        }


class _Registration(api_pb2_grpc.RegistrationServicer):
    def __init__(self, kubelet: MockKubelet) -> None:
        self.kubelet = kubelet

    async def Register(self, request: api_pb2.RegisterRequest, context: Any) -> api_pb2.Empty:
        if request.version != VERSION:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"unsupported device plugin API version {request.version!r}; kubelet speaks {VERSION}")
        self.kubelet._registered(request)
        return api_pb2.Empty()
